"""The organisation directory as the token verifier reads it: organisation number → (HER-id,
kind).

HelseID names a caller's organisation by its number in Enhetsregisteret (`orgnr_child`, else
`orgnr_parent`); carepath's rules, events and audit log name it by HER-id and kind. The
registry keeps both in its organisation directory (Adresseregisteret's entries, with
`orgnr`), and the pathway projector folds them into `registry_organisations` of the pathway
read model (`ACCESS_DATABASE_URL`, by default the pathway's own database), the table the access
policy reads too. Each verifier keeps the whole mapping in memory (`shared.sql.Snapshot`) and
reads it again when its copy is older than `[tokens] directory_refresh_seconds` (rules.toml):
a token costs no database round trip, and a directory change is seen within that bound (a
number the copy does not know, within a second: `MISS_REREAD_SECONDS`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from shared import config, sql
from shared.access.model import organisations


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """An organisation as carepath names it."""

    her_id: str
    kind: str


#: How old the copy may be for a number it does not know before it is read again.
MISS_REREAD_SECONDS = 1.0

#: orgnr → its organisation; None where two entries claim one number (the registry keeps a
#: number to one organisation; a read model caught between two of its events may not yet).
Mapping = dict[str, DirectoryEntry | None]


class OrganisationDirectory:
    """orgnr → (HER-id, kind), from a copy at most `refresh` seconds old. The table is the
    pathway read model's (its migrations create it); until it exists, a lookup raises."""

    def __init__(
        self, url: str, refresh: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = sql.engine(url, config.pool("directory"))
        self._mapping = sql.Snapshot(self._read, refresh, clock)

    def _read(self) -> Mapping:
        o = organisations
        found: Mapping = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(o.c.orgnr, o.c.her_id, o.c.kind).where(o.c.orgnr.is_not(None))
            )
            for orgnr, her_id, kind in rows:
                found[orgnr] = None if orgnr in found else DirectoryEntry(her_id, kind)
        return found

    def lookup(self, orgnr: str) -> DirectoryEntry | None:
        """The organisation holding `orgnr` (None: none, or not one alone); raises when the
        directory cannot be read. A number the copy does not know is looked for again in a
        copy read now, unless the copy is under `MISS_REREAD_SECONDS` old: an organisation
        registered a moment ago is found at once, and unknown numbers cost at most one
        query per that interval."""
        found = self._mapping.get().get(orgnr)
        if found is None:
            found = self._mapping.get(max_age=MISS_REREAD_SECONDS).get(orgnr)
        return found

    def orgnr_of(self, her_id: str) -> str | None:
        """The organisation number of a HER-id (the development issuer puts it in its
        tokens, as HelseID would)."""
        for orgnr, entry in self._mapping.get().items():
            if entry is not None and entry.her_id == her_id:
                return orgnr
        return None

    def close(self) -> None:
        self.engine.dispose()
