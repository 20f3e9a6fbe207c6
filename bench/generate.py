"""Many patients' events, fast, through the domain and the applications' batched save.

Each synthetic patient gets the course of one hospital stay across every service (about 21
published events): the registers' facts (residence in municipality 4201, the bench's GP office
as fastlege), a referral sent, received and accepted, a stay admitted with its admission notice,
health information and their receipts and closed, its discharge declared ready, answered,
discharged and the epicrisis sent, and a medication list with two prescriptions and `DOSES`
dose changes.

Every event is made by the domain's own command methods (the rules run, as they do for a
gRPC command), except the dose changes, triggered as the command records them (its rule refolds
the list each time: what `bench/history.py` measures, not what is generated here). Nothing goes
through gRPC, one command per call: the aggregates of `PER_SAVE` patients are saved in one
`Application.save(*aggregates)` — the batched save that `shared.store.GroupCommit` and the
registry's import use, one transaction per batch — so 200,000 events are stored in well under
a minute on SQLite. The same aggregates can instead be mapped to their public envelopes by the
relays' mapping (`shared.outbox.to_envelope`), for loading a read model through the projector
without stores (`bench/scale.py`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, CloseReason, PatientStays, Stay
from services.discharges.application import DischargesApplication
from services.discharges.domain import Destination, Discharge, KnownStay, ReadinessContent
from services.medications.application import MedicationsApplication
from services.medications.domain import MedicationList
from services.referrals.application import ReferralsApplication
from services.referrals.domain import Priority, Referral
from services.registry.application import RegistryApplication
from services.registry.domain import Registration
from shared.actors import Actor, OrgKind
from shared.apprec import AppRecStatus
from shared.domain import CarepathAggregate, CommandContext
from shared.events import Envelope
from shared.ids import FNR_SYSTEM
from shared.outbox import to_envelope
from shared.store import CarepathApplication
from tests.support import READINESS_NOTICE, make_fnr

GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
HOSPITAL = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
MUNICIPALITY = Actor(her_id="4201", org_kind=OrgKind.MUNICIPALITY, hpr="4210954")
REGISTRY = Actor(her_id="1", org_kind=OrgKind.REGISTRY)
#: Dose changes per patient's medication list.
DOSES = 3
#: Patients whose aggregates are saved in one transaction.
PER_SAVE = 100
#: A year with a daily rate for utskrivningsklare pasienter (shared/rules.toml).
T0 = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
APPS: dict[str, type[CarepathApplication]] = {
    "registry": RegistryApplication,
    "referrals": ReferralsApplication,
    "admissions": AdmissionsApplication,
    "discharges": DischargesApplication,
    "medications": MedicationsApplication,
}


def numbers() -> Iterator[str]:
    """Distinct synthetic fødselsnumre, as many as asked for (born 1940–1999: individual
    numbers 000–499)."""
    seen: set[str] = set()
    for year, month, day, block in itertools.product(
        range(40, 100), range(1, 13), range(1, 29), range(0, 500, 10)
    ):
        try:
            number = make_fnr(day, month, year, block)
        except ValueError:
            continue
        if number not in seen:
            seen.add(number)
            yield number


def patient(value: str) -> dict[str, str]:
    return {"system": FNR_SYSTEM, "value": value}


def course(i: int, who: dict[str, str]) -> dict[str, list[CarepathAggregate]]:
    """One patient's stay across every service, by service (aggregates with pending events)."""
    start = T0 + timedelta(minutes=i)

    def ctx(actor: Actor, step: int, hours: float) -> CommandContext:
        command = f"gen-{i}-{step}"
        return CommandContext(command, start + timedelta(hours=hours), actor, command)

    registration = Registration.start(ctx(REGISTRY, 0, 0), who)
    registration.record_residence(ctx(REGISTRY, 1, 0), MUNICIPALITY.her_id, date(1980, 1, 1))
    registration.assign_fastlege(
        ctx(REGISTRY, 2, 0), GP.her_id, GP.hpr or "", date(2000, 1, 1), None
    )

    referral = Referral.send(
        ctx(GP, 3, 1), who, HOSPITAL.her_id, "Benchmark", Priority.ROUTINE, None
    )
    referral.record_receipt(ctx(HOSPITAL, 4, 2), AppRecStatus.OK, [])
    referral.accept(ctx(HOSPITAL, 5, 3), (start + timedelta(days=7)).date())

    stay = Stay.admit(
        ctx(HOSPITAL, 6, 200), who, "Medisinsk sengepost 3", AdmissionType.ELECTIVE,
        referral.id, MUNICIPALITY.her_id, True, True,
    )  # fmt: skip
    index = PatientStays.start(ctx(HOSPITAL, 6, 200), who, stay.id)
    stay.send_admission_notice(ctx(HOSPITAL, 7, 201))
    stay.send_health_information(ctx(HOSPITAL, 8, 202))
    for step, message_id in enumerate(list(stay.messages), start=9):
        stay.record_message_receipt(ctx(MUNICIPALITY, step, 203), message_id, AppRecStatus.OK, [])

    known = KnownStay(stay.id, who, HOSPITAL.her_id, MUNICIPALITY.her_id, "OPEN")
    discharge = Discharge.open(ctx(HOSPITAL, 12, 250), known)
    discharge.declare_ready(ctx(HOSPITAL, 12, 250), known, ReadinessContent(**READINESS_NOTICE))
    discharge.answer_readiness(
        ctx(MUNICIPALITY, 13, 252), True, (start + timedelta(hours=300)).date()
    )
    discharge.discharge(ctx(HOSPITAL, 14, 300), known, Destination.HOME, None)
    discharge.send_epicrisis(ctx(HOSPITAL, 15, 301), GP.her_id)
    stay.close(ctx(HOSPITAL, 14, 300), CloseReason.DISCHARGED)

    medications = MedicationList.start(ctx(GP, 16, 4), who)
    entry = medications.prescribe(ctx(GP, 16, 4), "C09AA05", "Ramipril", "5 mg x 1", None)
    medications.prescribe(ctx(GP, 17, 5), "B01AA03", "Warfarin", "5 mg x 1", None)
    for k in range(DOSES):
        medications.trigger_event(
            MedicationList.MedicationDoseChanged,
            meta=ctx(GP, 18 + k, 6 + k).meta(who),
            entry_id=entry,
            dose=f"{k + 10} mg x 1",
            reason=None,
        )
    return {
        "registry": [registration],
        "referrals": [referral],
        "admissions": [stay, index],
        "discharges": [discharge],
        "medications": [medications],
    }


def courses(patients: int) -> Iterator[tuple[int, dict[str, list[CarepathAggregate]]]]:
    for i, value in zip(range(patients), numbers(), strict=False):
        yield i, course(i, patient(value))


def published_per_patient() -> int:
    """Published events of one patient's course (internal bookkeeping left out)."""
    return sum(len(b) for b in envelope_batches(1))


def fill(urls: dict[str, str], patients: int, progress: bool = True) -> dict[str, int]:
    """Store `patients` courses in the services' stores at `urls` (by service name), a batch
    of PER_SAVE patients per transaction per store; returns the events stored per service."""
    apps = {name: cls.from_url(urls[name]) for name, cls in APPS.items()}
    stored = dict.fromkeys(APPS, 0)
    pending: dict[str, list[CarepathAggregate]] = {name: [] for name in APPS}
    started = time.perf_counter()

    def flush() -> None:
        for name, aggregates in pending.items():
            if aggregates:
                stored[name] += sum(len(a.pending_events) for a in aggregates)
                apps[name].save(*aggregates)
                aggregates.clear()

    try:
        for i, by_service in courses(patients):
            for name, aggregates in by_service.items():
                pending[name].extend(aggregates)
            if (i + 1) % PER_SAVE == 0:
                flush()
            if progress and (i + 1) % 2000 == 0:
                total = sum(stored.values())
                rate = total / (time.perf_counter() - started)
                print(f"  stored {i + 1} patients, {total} events ({rate:.0f}/s)", flush=True)
        flush()
    finally:
        for app in apps.values():
            app.close()
    return stored


def envelope_batches(patients: int, per_batch: int = PER_SAVE) -> Iterator[list[Envelope]]:
    """The published envelopes of `patients` courses, as the relays would publish them
    (mapped by each service's contract), `per_batch` patients at a time; nothing is stored."""
    contracts: dict[str, Any] = {name: cls for name, cls in APPS.items()}
    batch: list[Envelope] = []
    for i, by_service in courses(patients):
        for name, aggregates in by_service.items():
            app = contracts[name]
            for aggregate in aggregates:
                for event in aggregate.collect_events():
                    if type(event).__name__ not in app.internal_event_types:
                        batch.append(to_envelope(name, app, event))
        if (i + 1) % per_batch == 0:
            yield batch
            batch = []
    if batch:
        yield batch
