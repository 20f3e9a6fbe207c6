"""Every consumer of the database outlives it: while the database's sessions are terminated
again and again (`pg_terminate_backend` on this test's own database only) under a running
relay, the projector and a reaction, stays keep being admitted, and afterwards every event is
published, projected and applied by the reaction exactly once, and all three still run."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
import sqlalchemy as sa

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, Stay
from services.discharges.application import DischargesApplication
from services.pathway import migrate, readmodel
from shared import bootstrap
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from shared.retry import until_available
from tests.conftest import HOSPITAL, MUNICIPALITY
from tests.processes import nameko
from tests.support import (
    admin_uri,
    consumers,
    ctx,
    event_queues,
    make_fnr,
    projector_queue,
    run_projector,
    wait_for,
)
from tests.wire import dead_letters, empty_dead_letters

log = logging.getLogger(__name__)
STAYS = 40
REACTIONS = "services.discharges.reactions"


def terminate_sessions(url: str) -> int:
    """End every other session of the database at `url` (this test's own); returns how many."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def terminate_in_flight(engine: sa.Engine, url: str, statement: str, times: int) -> list[int]:
    """The first `times` statements starting with `statement` on `engine` meet a terminated
    session: right before each runs, its own session is ended by the server
    (pg_terminate_backend from another session). Returns the count done, updated."""
    admin = url.rsplit("/", 1)[0] + "/postgres"
    done = [0]

    def before(conn: sa.Connection, _cursor: object, text: str, *_: object) -> None:
        if done[0] < times and text.lstrip().upper().startswith(statement):
            done[0] += 1
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
            with psycopg.connect(admin, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    sa.event.listen(engine, "before_cursor_execute", before)
    return done


def admit(admissions: AdmissionsApplication, i: int) -> Stay:
    patient = {"system": FNR_SYSTEM, "value": make_fnr(1 + i % 28, 6, 47, 100 + i)}
    return admissions.admit_patient(
        ctx(HOSPITAL, f"outlive-{i}"), patient, "Medisinsk sengepost 2", AdmissionType.ACUTE, None,
        MUNICIPALITY.her_id, True, False,
    )  # fmt: skip


def test_relay_projector_and_reaction_outlive_terminated_database_sessions(
    postgres_url: str, broker: Tenant, amqp_uri: str, tmp_path: Path
) -> None:
    urls = {
        name: postgres_url
        for name in ("admissions", "discharges", "pathway", "audit", "revocations")
    }
    admissions = AdmissionsApplication.from_url(postgres_url)
    discharges = DischargesApplication.from_url(postgres_url)
    engine = readmodel.create_engine(postgres_url, "project")
    migrate.upgrade(engine)
    # The relay as its process builds it (shared/bootstrap.py), on the relay's own pool.
    positions = bootstrap.position_store("admissions", postgres_url)
    relayed = bootstrap.application(AdmissionsApplication, "store-relay", postgres_url)
    relay = bootstrap.outbox_relay(
        relayed,
        positions,
        bootstrap.event_publisher("admissions", broker.uri("admissions")),
        batch_size=5,  # many batches, many position writes to meet a terminated session
    )
    # The relay's position write and the projector's batch each meet a terminated session a
    # few times, exactly while they write; the terminations below hit whatever is open.
    position_writes = terminate_in_flight(positions._engine, postgres_url, "UPDATE", 3)
    # (the batch's events go in by COPY, outside SQLAlchemy's statement events; the rewrite of
    # the touched patients' rows that follows in the same transaction meets the termination)
    projections = terminate_in_flight(engine, postgres_url, "DELETE FROM PATHWAY_", 3)
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    projector, stop_projector = run_projector(engine, broker, projector_queue("outlive"))
    empty_dead_letters(amqp_uri)
    admin = admin_uri(broker)
    try:
        relay_thread.start()
        with nameko(REACTIONS, broker, urls):
            stays: list[Stay] = []
            terminated = 0
            for i in range(STAYS):
                stays.append(
                    until_available(lambda i=i: admit(admissions, i), log, "admit (terminated)")
                )
                if i % 5 == 4:  # every session ended after every five admissions
                    terminated += terminate_sessions(postgres_url)
                    wait_for(
                        lambda: all(
                            until_available(lambda s=s: discharges.stays.get(s.id), log, "look")
                            for s in stays
                        ),
                        timeout=120,
                        what="discharges to know every stay admitted so far",
                    )
            assert terminated >= 2 * STAYS // 5  # the relay's, the reaction's at least
            assert all(consumers(admin, q) for q in event_queues(REACTIONS))
        published = {e.event_id for e in iter_all_envelopes("admissions", admissions)}

        def projected() -> list[str]:
            with engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.select(readmodel.events.c.event_id).where(
                            readmodel.events.c.source == "admissions"
                        )
                    ).scalars()
                )

        wait_for(lambda: set(projected()) == published, timeout=120, what="every event projected")
        assert sorted(projected()) == sorted(published)  # none lost, none twice
        assert position_writes == [3] and projections == [3]
        assert relay_thread.is_alive()
        assert relay.position >= max(
            n.id for n in admissions.recorder.select_notifications(0, 10_000)
        )
        assert projector.projected >= len(published)
        assert dead_letters(amqp_uri) == []  # nothing parked for a lost session
        with discharges.stays._engine.connect() as conn:  # one row per stay, no more
            count = conn.execute(sa.text("SELECT count(*) FROM discharge_known_stays")).scalar()
        assert count == STAYS
    finally:
        stop.set()
        stop_projector.set()
        relay_thread.join(timeout=20)
        positions.close()
        engine.dispose()
        admissions.close()
        relayed.close()
        discharges.close()
