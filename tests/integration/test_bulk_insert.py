"""The bulk insert the projector and a rebuild write with (`shared.sql.bulk_insert`: COPY on
PostgreSQL, one prepared statement on SQLite) stores exactly what SQLAlchemy's executemany
stores: the same values, JSON as the same text, booleans and NULLs as the column types say."""

from __future__ import annotations

import sqlalchemy as sa

from services.pathway import migrate
from services.pathway import readmodel as rm
from shared import sql

ROWS = [
    {
        "referral_id": f"r{i}",
        "patient_key": "urn:oid:2.16.578.1.12.4.1.4.1|p",
        "state": "SENT",
        "priority": "URGENT" if i % 2 else "ROUTINE",
        "cancer_pathway": None if i % 3 else "CRC",
        "sender_her_id": "8166",
        "receiver_her_id": "59",
        "sent_at": f"2025-01-0{i + 1}T08:00:00.000000Z",
        "updated_at": f"2025-01-0{i + 1}T09:00:00.000000Z",
        "is_open": bool(i % 2),
        "cancer_milestones": None if i % 3 else [{"name": 'Ørebro tab\t"quoted"', "days": i}],
    }
    for i in range(5)
]


def _stored(engine: sa.Engine, table: sa.Table) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(  # the text as stored, not as SQLAlchemy maps it back
            f"SELECT referral_id, CAST(cancer_milestones AS TEXT), is_open FROM {table.name}"
        )
        return sorted(tuple(r) for r in raw)


def test_a_bulk_insert_stores_what_executemany_stores(backend: dict[str, str]) -> None:
    engine = rm.create_engine(backend["pathway"], "tool")
    migrate.upgrade(engine)
    table = rm.referrals
    with engine.begin() as conn:
        conn.execute(table.delete())
        conn.execute(table.insert(), ROWS)
    expected = _stored(engine, table)
    with engine.connect() as conn:
        mapped = sorted(tuple(r) for r in conn.execute(sa.select(table)))
    with engine.begin() as conn:
        conn.execute(table.delete())
        sql.bulk_insert(conn, table, ROWS)
        sql.bulk_insert(conn, table, [])  # nothing to write: nothing done
    assert _stored(engine, table) == expected
    with engine.connect() as conn:
        assert sorted(tuple(r) for r in conn.execute(sa.select(table))) == mapped
    engine.dispose()


def test_a_bulk_insert_is_part_of_the_transaction(backend: dict[str, str]) -> None:
    engine = rm.create_engine(backend["pathway"], "tool")
    migrate.upgrade(engine)
    table = rm.referrals
    with engine.begin() as conn:
        conn.execute(table.delete())
    try:
        with engine.begin() as conn:
            sql.bulk_insert(conn, table, ROWS)
            raise RuntimeError("the rebuild failed half way")
    except RuntimeError:
        pass
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0
    engine.dispose()
