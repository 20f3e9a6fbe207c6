"""Correspondence between the municipality and the patient's GP (PLO messages with receipts)."""
