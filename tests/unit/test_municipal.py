"""The municipality's side of the pathway, on in-memory stores: a service decided, started and
ended by the rules; a death recorded once; and what the pathway's fold makes of both — where
the patient is, the tasks, the stays, the payment periods."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.admissions.application import AdmissionsApplication
from services.admissions.domain import AdmissionType, CloseReason
from services.municipal.application import MunicipalApplication
from services.municipal.domain import EndReason, ServiceKind, ServiceState
from services.pathway.folding import codec
from services.pathway.folding.discharges import payment_spans
from services.pathway.folding.pathway import PatientPathway, fold, replay
from services.registry.application import RegistryApplication
from shared.domain import CommandContext
from shared.errors import AlreadyExists, InvalidArgument, InvalidTransition, NotPermitted
from shared.events import Envelope, Payload
from shared.events import discharges as dc
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import HOSPITAL, MUNICIPALITY, OTHER_MUNICIPALITY
from tests.support import READINESS_NOTICE, REGISTER_ADAPTER, make_fnr

PATIENT = {"system": FNR_SYSTEM, "value": make_fnr(14, 3, 38, 510)}
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
#: Monday 2 March 2026, 09:00 UTC (10:00 in Oslo).
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NURSING_HOME = "88001"


def at(actor, command_id, hours=0.0):  # type: ignore[no-untyped-def]
    return CommandContext(command_id, T0 + timedelta(hours=hours), actor, "story")


# --- the service's own rules -------------------------------------------------------------------


def test_only_a_municipality_decides_and_a_place_names_its_institution() -> None:
    app = MunicipalApplication(env=POPO)
    with pytest.raises(NotPermitted):
        app.decide(at(HOSPITAL, "d"), PATIENT, ServiceKind.HOME_NURSING, date(2026, 3, 3), None)
    with pytest.raises(InvalidArgument) as refused:
        app.decide(
            at(MUNICIPALITY, "d"), PATIENT, ServiceKind.SHORT_TERM_STAY, date(2026, 3, 3), None
        )
    assert refused.value.field == "institution_her_id"
    with pytest.raises(InvalidArgument):
        app.decide(
            at(MUNICIPALITY, "d"), PATIENT, ServiceKind.HOME_NURSING, date(2026, 3, 3), NURSING_HOME
        )


def test_a_service_is_decided_started_and_ended_once_each_by_its_municipality() -> None:
    app = MunicipalApplication(env=POPO)
    decided = app.decide(
        at(MUNICIPALITY, "d"), PATIENT, ServiceKind.HOME_NURSING, date(2026, 3, 3), None
    )
    again = app.decide(
        at(MUNICIPALITY, "d"), PATIENT, ServiceKind.HOME_NURSING, date(2026, 3, 3), None
    )
    assert again.id == decided.id and again.version == decided.version  # a retry records nothing
    with pytest.raises(NotPermitted):
        app.start(at(OTHER_MUNICIPALITY, "s", 1), decided.id)
    with pytest.raises(InvalidArgument):  # started before it was decided
        app.start(at(MUNICIPALITY, "s", -1), decided.id)
    started = app.start(at(MUNICIPALITY, "s", 24), decided.id)
    assert started.state is ServiceState.STARTED
    assert app.start(at(MUNICIPALITY, "s", 24), decided.id).version == started.version
    with pytest.raises(InvalidTransition):
        app.start(at(MUNICIPALITY, "s2", 25), decided.id)
    ended = app.end(at(MUNICIPALITY, "e", 48), decided.id, EndReason.NO_LONGER_NEEDED)
    assert ended.state is ServiceState.ENDED and ended.end_reason is EndReason.NO_LONGER_NEEDED
    with pytest.raises(InvalidTransition):
        app.end(at(MUNICIPALITY, "e2", 49), decided.id, EndReason.NO_LONGER_NEEDED)
    with pytest.raises(InvalidTransition):
        app.start(at(MUNICIPALITY, "s3", 50), decided.id)


def test_a_death_is_recorded_once() -> None:
    registry = RegistryApplication(env=POPO)
    first = registry.record_death(at(HOSPITAL, "death", 5), PATIENT)
    assert first.death is not None and first.death["died_on"] == "2026-03-02"
    assert registry.record_death(at(HOSPITAL, "death", 5), PATIENT).version == first.version
    with pytest.raises(AlreadyExists):
        registry.record_death(at(REGISTER_ADAPTER, "folkeregisteret", 30), PATIENT)


# --- what the pathway makes of them -----------------------------------------------------------


def _discharge(stay_id: str, events: list[tuple[int, Payload, float, object]]) -> list[Envelope]:
    """A discharge's events as the discharges service publishes them."""
    discharge = "7a2d2f7e-5a54-5b38-9a0c-2b1f3f8d0b01"
    return [
        Envelope(
            event_id=f"{discharge}:{version}",
            aggregate_id=discharge,
            aggregate_version=version,
            patient=PATIENT,
            occurred_at=(T0 + timedelta(hours=hours)).isoformat(),
            recorded_at=datetime.now(UTC).isoformat(),
            actor=actor.as_dict(),  # type: ignore[attr-defined]
            correlation_id="story",
            causation_id=f"d-{version}",
            data=data,
        )
        for version, data, hours, actor in events
    ]


class Story:
    """One patient's services on in-memory stores: a stay at HOSPITAL, its discharge, the
    municipality's services and the registers."""

    def __init__(self) -> None:
        self.registry = RegistryApplication(env=POPO)
        self.registry.record_residence(
            at(REGISTER_ADAPTER, "r", -1000), PATIENT, MUNICIPALITY.her_id, date(2000, 1, 1)
        )
        self.admissions = AdmissionsApplication(env=POPO)
        self.municipal = MunicipalApplication(env=POPO)
        self.stay = self.admissions.admit_patient(
            at(HOSPITAL, "admit"), PATIENT, "Med 2", AdmissionType.ACUTE, None,
            MUNICIPALITY.her_id, True, False,
        )  # fmt: skip
        self.discharge: list[Envelope] = []

    def ready(self, hours: float) -> None:
        self.discharge += _discharge(
            str(self.stay.id),
            [
                (
                    2,
                    dc.PatientDeclaredReadyForDischarge(
                        stay_id=str(self.stay.id),
                        hospital_her_id=HOSPITAL.her_id,
                        municipality_her_id=MUNICIPALITY.her_id,
                        message_id="7a2d2f7e-5a54-5b38-9a0c-2b1f3f8d0b02",
                        **READINESS_NOTICE,
                    ),
                    hours,
                    HOSPITAL,
                )
            ],
        )

    def discharged(self, hours: float, destination: str = "HOME") -> None:
        self.discharge += _discharge(
            str(self.stay.id),
            [
                (
                    3,
                    dc.PatientDischarged(
                        stay_id=str(self.stay.id),
                        destination=destination,  # type: ignore[arg-type]
                        destination_her_id=None,
                        report_message_id=None,
                        notice_message_id=None,
                    ),
                    hours,
                    HOSPITAL,
                )
            ],
        )
        self.admissions.close_stay(
            at(HOSPITAL, "close", hours), self.stay.id, CloseReason.DISCHARGED
        )

    def history(self) -> list[Envelope]:
        apps = (self.registry, self.admissions, self.municipal)
        return [e for app in apps for e in iter_all_envelopes(app.name, app)] + self.discharge

    def pathway(self) -> PatientPathway:
        return fold(self.history())


def test_discharged_home_with_home_nursing_started_the_next_day() -> None:
    story = Story()
    story.ready(20)
    story.discharged(30)
    assert story.pathway().location.kind == "HOME"
    nursing = story.municipal.decide(
        at(MUNICIPALITY, "vedtak", 26), PATIENT, ServiceKind.HOME_NURSING, date(2026, 3, 3), None
    )
    [waiting] = [t for t in story.pathway().tasks if t.kind == "SERVICE_START"]
    assert (waiting.waiting_on_her_id, waiting.due) == (
        MUNICIPALITY.her_id,
        "2026-03-03T23:00:00.000000Z",  # the end of the Oslo day it is to start
    )
    story.municipal.start(at(MUNICIPALITY, "first-visit", 48), nursing.id)
    started = story.pathway()
    assert not [t for t in started.tasks if t.kind == "SERVICE_START"]
    assert (started.location.kind, started.location.since) == (
        "HOME_WITH_SERVICES",
        "2026-03-04T09:00:00.000000Z",
    )
    assert [(s.kind, s.state) for s in started.services] == [("HOME_NURSING", "STARTED")]


def test_a_short_term_place_moves_the_patient_and_a_hospital_stay_takes_precedence() -> None:
    story = Story()
    story.discharged(30)
    place = story.municipal.decide(
        at(MUNICIPALITY, "kort", 28), PATIENT, ServiceKind.SHORT_TERM_STAY, date(2026, 3, 3),
        NURSING_HOME,
    )  # fmt: skip
    story.municipal.start(at(MUNICIPALITY, "arrived", 31), place.id)
    where = story.pathway().location
    assert (where.kind, where.her_id) == ("SHORT_TERM_NURSING_HOME", NURSING_HOME)
    story.admissions.admit_patient(
        at(HOSPITAL, "again", 100), PATIENT, "Med 2", AdmissionType.ACUTE, None,
        MUNICIPALITY.her_id, True, True,
    )  # fmt: skip
    assert story.pathway().location.kind == "HOSPITAL"


def test_a_patient_who_dies_while_ready_for_discharge() -> None:
    """Every open task closes, the stay and the readiness period end at the death (no payment
    from the day of death), the running service ends, the location says deceased."""
    story = Story()
    story.ready(20)  # Monday 3 March 05:00 UTC
    story.municipal.decide(
        at(MUNICIPALITY, "vedtak", 21), PATIENT, ServiceKind.LONG_TERM_STAY, date(2026, 3, 10),
        NURSING_HOME,
    )  # fmt: skip
    alive = story.pathway()
    assert {t.kind for t in alive.tasks} == {"READINESS_ANSWER", "MESSAGE_RECEIPT", "SERVICE_START"}
    story.registry.record_death(at(HOSPITAL, "death", 76), PATIENT)  # Thursday 5 March, 14:00
    dead = story.pathway()
    assert dead.tasks == []
    assert dead.death is not None and dead.death.on == "2026-03-05"
    assert (dead.location.kind, dead.location.since) == ("DECEASED", dead.death.at)
    assert [s.closed_at for s in dead.stays] == [dead.death.at]
    assert [(s.state, s.end_reason) for s in dead.services] == [("ENDED", "PATIENT_DIED")]
    [span] = [s for d in dead.discharges for s in payment_spans(d)]
    assert (span.ready_on, span.ends_on) == (date(2026, 3, 3), date(2026, 3, 5))
    assert dead.timeline[-1][1] == "Pasienten døde"


def test_the_death_reported_late_folds_as_a_replay_does() -> None:
    story = Story()
    story.ready(20)
    story.registry.record_death(at(REGISTER_ADAPTER, "late", 40), PATIENT)
    history = story.history()
    whole, _ = replay(history)
    # the state survives its text (the projector stores it between batches)
    assert codec.dump(codec.load(codec.dump(whole))) == codec.dump(whole)
    without_death = [e for e in history if e.event_type != "PatientDied"]
    state, _ = replay(without_death)
    state.add([e for e in history if e.event_type == "PatientDied"])
    assert codec.dump(state) == codec.dump(whole)
