"""The audit log of every call (see `shared.audit.log`)."""
