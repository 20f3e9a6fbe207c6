"""The pathway's folds: pure functions from a patient's events to what the read model holds.

Nothing here touches SQL, gRPC or another service (tests/unit/test_folding_imports.py): the
projector (services/pathway/projector.py) reads and writes, the row mapping
(services/pathway/rows.py) turns the folded state into table rows.
"""
