"""Payment for a patient ready for discharge, by the regulation's rules, through admissions,
discharges (and its view of stays, kept by its nameko reaction) and the pathway: over New Year
each day at its own year's rate; not payable when the hospital's admission notice came late;
a year without a rate priced once the operator adds it. The patient lives in MUNICIPALITY
(registered as the register adapter does): it answers the readiness, reads the pathway and
pays."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from uuid import UUID

import grpc
import pytest
import sqlalchemy as sa

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    discharges_pb2,
    discharges_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
)
from services.discharges.application import DischargesApplication
from shared.audit import log as audit
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.conftest import HOSPITAL, MUNICIPALITY
from tests.processes import nameko
from tests.support import (
    READINESS_NOTICE,
    ROOT,
    Harness,
    auth,
    drain_queue,
    make_fnr,
    meta,
    projector_queue,
    running_system,
    wait_for,
)

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(24, 12, 38, 200))


@pytest.fixture
def system(backend: dict[str, str], broker: Tenant, amqp_uri: str) -> Iterator[Harness]:
    queue = projector_queue("e2e")
    with (
        running_system(backend, broker, queue) as harness,
        nameko("services.discharges.reactions", broker, backend),
    ):
        yield harness
    drain_queue(amqp_uri, queue)


@pytest.fixture(autouse=True)
def registered(system: Harness) -> None:
    system.register(
        {"system": PATIENT.system, "value": PATIENT.value}, municipality=MUNICIPALITY.her_id
    )


def stubs(
    system: Harness,
) -> tuple[
    admissions_pb2_grpc.AdmissionServiceStub,
    discharges_pb2_grpc.DischargeServiceStub,
    pathway_pb2_grpc.PathwayServiceStub,
]:
    return (
        admissions_pb2_grpc.AdmissionServiceStub(system.channel(system.servers["admissions"])),
        discharges_pb2_grpc.DischargeServiceStub(system.channel(system.servers["discharges"])),
        pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server)),
    )


def admitted(
    system: Harness,
    at: datetime,
    notice_at: datetime | None = None,
    health_information_at: datetime | None = None,
) -> str:
    """A patient admitted at `at` whom the hospital expects to need municipal services, with
    the admission notice and the first Helseopplysninger sent at the times given; the stay's id
    once discharges knows the stay."""
    admissions, _, _ = stubs(system)
    stay = admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=meta("admit", at),
            patient=PATIENT,
            ward="Ortopedisk sengepost",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id=MUNICIPALITY.her_id,
            municipal_services_likely=True,
        ),
        metadata=auth(HOSPITAL),
    )
    if notice_at:
        admissions.SendAdmissionNotice(
            admissions_pb2.SendAdmissionNoticeRequest(
                metadata=meta("notice", notice_at), stay_id=stay.stay_id
            ),
            metadata=auth(HOSPITAL),
        )
    if health_information_at:
        admissions.SendHealthInformation(
            admissions_pb2.SendHealthInformationRequest(
                metadata=meta("health", health_information_at), stay_id=stay.stay_id
            ),
            metadata=auth(HOSPITAL),
        )
    # Until discharges has seen the admission, the stay is unknown there, and an unknown stay
    # is refused like anyone else's: wait for its view of the stays.
    known = system.apps["discharges"]
    assert isinstance(known, DischargesApplication)
    wait_for(lambda: known.stays.get(UUID(stay.stay_id)), what="discharges to know the stay")
    return stay.stay_id


def ready_then_received(
    system: Harness, stay_id: str, ready_at: datetime, receive_on: date, left_at: datetime
) -> None:
    """Declared ready at `ready_at` with a complete notice, answered at once "from
    `receive_on`", discharged home with services at `left_at`."""
    _, discharges, _ = stubs(system)
    discharges.DeclareReadyForDischarge(
        discharges_pb2.DeclareReadyForDischargeRequest(
            metadata=meta("ready", ready_at), stay_id=stay_id, **READINESS_NOTICE
        ),
        metadata=auth(HOSPITAL),
    )
    discharges.AnswerReadiness(
        discharges_pb2.AnswerReadinessRequest(
            metadata=meta("answer", ready_at + timedelta(hours=3)),
            stay_id=stay_id,
            can_receive=True,
            receive_on=common_pb2.Date(
                year=receive_on.year, month=receive_on.month, day=receive_on.day
            ),
        ),
        metadata=auth(MUNICIPALITY),
    )
    discharges.DischargePatient(
        discharges_pb2.DischargePatientRequest(
            metadata=meta("discharge", left_at),
            stay_id=stay_id,
            destination=discharges_pb2.DISCHARGE_DESTINATION_HOME_WITH_SERVICES,
        ),
        metadata=auth(HOSPITAL),
    )


def read_pathway(system: Harness) -> pathway_pb2.Pathway:
    _, _, pathway = stubs(system)
    return pathway.GetPathway(
        pathway_pb2.GetPathwayRequest(
            patient=PATIENT, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
        ),
        metadata=auth(MUNICIPALITY),
    )


def discharged_pathway(system: Harness) -> pathway_pb2.Pathway:
    """The municipality's view of the pathway once the discharge is in it."""

    def discharged() -> pathway_pb2.Pathway | None:
        try:
            reply = read_pathway(system)
        except grpc.RpcError:
            return None
        types = {e.event_type for e in reply.timeline}
        return reply if "PatientDischarged" in types else None

    reply = wait_for(discharged, what="the discharge in the pathway")
    assert reply is not None
    return reply


def test_ready_on_30_december_received_on_3_january_costs_two_days_of_each_years_rate(
    system: Harness,
) -> None:
    stay_id = admitted(
        system,
        datetime(2023, 12, 20, 10, tzinfo=OSLO),
        notice_at=datetime(2023, 12, 20, 11, tzinfo=OSLO),
        health_information_at=datetime(2023, 12, 20, 15, tzinfo=OSLO),
    )
    ready_then_received(
        system,
        stay_id,
        datetime(2023, 12, 30, 9, tzinfo=OSLO),
        date(2024, 1, 3),
        datetime(2024, 1, 3, 11, tzinfo=OSLO),
    )
    reply = discharged_pathway(system)
    (payment,) = reply.payments
    assert (payment.days, payment.ongoing) == (4, False)
    assert payment.municipality_her_id == MUNICIPALITY.her_id  # where the patient lives
    assert payment.amount_nok == 2 * 5508 + 2 * 5745
    assert [(y.year, y.days, y.daily_rate_nok) for y in payment.years] == [
        (2023, 2, 5508),
        (2024, 2, 5745),
    ]
    # The notices went in time and the readiness notice says all it must: the municipality owes it.
    assert payment.payable and not payment.not_payable_reasons
    assert payment.amount_owed_nok == payment.amount_nok
    assert reply.location.kind == pathway_pb2.LOCATION_KIND_HOME_WITH_SERVICES


def test_a_readiness_period_is_not_payable_when_the_admission_notice_came_late(
    system: Harness,
) -> None:
    # Admitted Monday morning, expected to need home nursing; the ward sent Melding om innlagt
    # pasient only on Wednesday (50 hours later), Helseopplysninger the same afternoon.
    stay_id = admitted(
        system,
        datetime(2024, 10, 7, 8, tzinfo=OSLO),
        notice_at=datetime(2024, 10, 9, 10, tzinfo=OSLO),
        health_information_at=datetime(2024, 10, 7, 14, tzinfo=OSLO),
    )
    ready_then_received(
        system,
        stay_id,
        datetime(2024, 10, 14, 9, tzinfo=OSLO),
        date(2024, 10, 17),
        datetime(2024, 10, 17, 12, tzinfo=OSLO),
    )
    (payment,) = discharged_pathway(system).payments
    # Three døgn in hospital waiting, at 2024's rate — but the hospital did not meet § 8, so
    # the municipality owes nothing for them.
    assert (payment.days, payment.amount_nok) == (3, 3 * 5745)
    assert not payment.payable
    assert list(payment.not_payable_reasons) == [
        pathway_pb2.NOT_PAYABLE_REASON_ADMISSION_NOTICE_LATE
    ]
    assert "Melding om innlagt pasient ble sendt senere enn 24 timer" in payment.not_payable_text
    assert payment.amount_owed_nok == 0


def add_rate(backend: dict[str, str], year: int, nok: int) -> subprocess.CompletedProcess[str]:
    """The operator adds a year's rate with the command line (no release, no restart)."""
    return subprocess.run(
        [
            sys.executable, "-m", "services.pathway", "rates", "add",
            "--year", str(year), "--nok", str(nok),
            "--source", f"Helsedirektoratet, døgnpris {year} (test: the rate as entered)",
        ],
        env={
            **os.environ,
            "PATHWAY_DATABASE_URL": backend["pathway"],
            "AUDIT_DATABASE_URL": backend["audit"],
            "LOG_LEVEL": "WARNING",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def test_a_period_over_new_year_2025_2026_is_priced_once_the_operator_adds_the_rates(
    system: Harness, backend: dict[str, str]
) -> None:
    stay_id = admitted(
        system,
        datetime(2025, 12, 22, 13, tzinfo=OSLO),
        notice_at=datetime(2025, 12, 22, 14, tzinfo=OSLO),
        health_information_at=datetime(2025, 12, 23, 9, tzinfo=OSLO),
    )
    ready_then_received(
        system,
        stay_id,
        datetime(2025, 12, 30, 9, tzinfo=OSLO),
        date(2026, 1, 3),
        datetime(2026, 1, 3, 11, tzinfo=OSLO),
    )
    (payment,) = discharged_pathway(system).payments
    # Four døgn, payable, but neither year's rate is in carepath yet: no amount, and why.
    assert (payment.days, payment.payable) == (4, True)
    assert (payment.amount_nok, payment.amount_owed_nok) == (0, 0)
    assert "2025" in payment.amount_unavailable_reason
    assert [(y.year, y.days, y.rate_known) for y in payment.years] == [
        (2025, 2, False),
        (2026, 2, False),
    ]

    # The operator adds both years' rates; the next read prices each døgn at its own year's
    # rate, with no rebuild and no restart. A year that has a rate is not replaced.
    for year, nok in ((2025, 6100), (2026, 6300)):
        added = add_rate(backend, year, nok)
        assert added.returncode == 0, added.stderr
    again = add_rate(backend, 2025, 9999)
    assert again.returncode != 0 and "2025 already has a daily rate" in again.stderr
    (payment,) = read_pathway(system).payments
    assert [(y.year, y.days, y.daily_rate_nok) for y in payment.years] == [
        (2025, 2, 6100),
        (2026, 2, 6300),
    ]
    assert payment.amount_nok == payment.amount_owed_nok == 2 * 6100 + 2 * 6300
    assert not payment.amount_unavailable_reason
    # Each operator command is on the audit log, as a gRPC call is.
    log = audit.audit_log
    with system.audit_engine.connect() as conn:
        query = sa.select(log.c.call, log.c.outcome, log.c.basis).where(
            log.c.call.like("PaymentRates/%")
        )
        calls = [tuple(row) for row in conn.execute(query.order_by(log.c.at, log.c.seq))]
    assert calls == [
        ("PaymentRates/AddRate", "OK", "OPERATOR"),
        ("PaymentRates/AddRate", "OK", "OPERATOR"),
        ("PaymentRates/AddRate", "AlreadyExists", "OPERATOR"),
    ]
