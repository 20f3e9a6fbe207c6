"""Discharges: the end of a hospital stay (utskrivningsklar pasient, avmelding, utskrivning,
Utskrivningsrapport, epikrise) and the PLO messages exchanged about it."""
