"""Medications: the patient's shared medication list (PLL-style)."""
