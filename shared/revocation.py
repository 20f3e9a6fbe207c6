"""The revocation list: access tokens withdrawn before their expiry (the viewer's logout), by
their `jti`, shared by every process that checks tokens.

One small table, `revoked_tokens (jti, expires_at, revoked_at)`, in the database named by
`REVOCATIONS_DATABASE_URL` (by default `var/revocations.sqlite`; in production the same
PostgreSQL every service reaches). Every verifier keeps the unexpired jtis in memory and reads
them again when its copy is older than `[tokens] revocation_refresh_seconds` (1 s, rules.toml),
on the call that finds it stale: a revoked token is refused by every process within that bound.
When the list cannot be read the call is not let through on an old copy (the caller gets
UNAVAILABLE and retries). A revocation keeps the token's expiry, so rows past it are pruned: a
token that has expired is refused anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from shared import config, sql

metadata = sa.MetaData()

revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", sa.String(200), primary_key=True),
    #: The token's own expiry (epoch seconds): after it the row is of no use and is pruned.
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("revoked_at", sa.Float, nullable=False),
)


class RevocationList:
    """The revoked jtis of one database, as one process sees them (at most `refresh` seconds
    old)."""

    def __init__(
        self, url: str, refresh: float = 1.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = sql.engine(url, config.pool("revocations"))
        sql.create_tables(metadata, self.engine)
        self._clock = clock
        self._revoked = sql.Snapshot(self._read, refresh, lambda: self._clock())

    def _read(self) -> frozenset[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.expires_at >= self._clock())
            )
            return frozenset(row.jti for row in rows)

    def revoke(self, jti: str, expires_at: float) -> None:
        """Withdraw the token `jti` (valid until `expires_at`); revoking twice is harmless."""
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(revoked_tokens).where(revoked_tokens.c.expires_at < now))
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(revoked_tokens).values(
                        jti=jti, expires_at=float(expires_at), revoked_at=now
                    )
                )
        except sa.exc.IntegrityError:
            pass  # revoked already
        self._revoked.update(lambda revoked: revoked | {jti})

    def is_revoked(self, jti: str) -> bool:
        """Whether `jti` is revoked, by a copy at most `refresh` seconds old (read again now if
        it is older; a database error propagates rather than answering from a stale copy)."""
        return jti in self._revoked.get()

    def close(self) -> None:
        self.engine.dispose()
