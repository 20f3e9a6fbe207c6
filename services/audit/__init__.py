"""Operating the audit log (shared/audit): migrate it, verify its hash chain."""
