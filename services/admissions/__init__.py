"""Admissions: the hospital stay (innleggelse) and the PLO messages exchanged about it."""
