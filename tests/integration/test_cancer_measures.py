"""Cancer pathways counted as Helsedirektoratet counts them, from the read model (SQLite and
PostgreSQL): per hospital and pathway, the pathways whose treatment started in a period, the
share of them within the standard total from the referral received, and those ended without
treatment, which are not in the share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from services.pathway import views
from services.pathway.projector import project
from services.referrals.application import ReferralsApplication
from services.referrals.domain import (
    CancerMilestone,
    CancerPathway,
    CancerPathwayEndReason,
    Priority,
    Treatment,
)
from shared.actors import Actor
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.events import Envelope
from shared.events import registry as reg
from shared.ids import FNR_SYSTEM
from shared.outbox import iter_all_envelopes
from tests.conftest import GP, HOSPITAL, MUNICIPALITY, OTHER_HOSPITAL
from tests.support import make_fnr

#: Monday 2 March 2026, 09:00 UTC: every referral is received an hour after it is sent.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SPRING = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
MAY = (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))


def patient(n: int) -> dict[str, str]:
    return {"system": FNR_SYSTEM, "value": make_fnr(1 + n, 4, 61, 300)}


def colorectal(
    app: ReferralsApplication,
    n: int,
    hospital: Actor,
    treatment_day: int | None,
    end: CancerPathwayEndReason | None = None,
) -> None:
    """Patient n's colorectal pathway at `hospital`: seen on day 5, surgery decided on day 14,
    started on `treatment_day` after the receipt (the standard total is 35 days) — or, with
    `end`, ended without treatment on day 10."""

    def c(actor: Actor, cid: str, days: float) -> CommandContext:
        return CommandContext(f"{n}-{cid}", T0 + timedelta(hours=1, days=days), actor, "c")

    r = app.send_referral(
        c(GP, "s", -1 / 24),
        patient(n),
        hospital.her_id,
        "Blod i avføringen",
        Priority.URGENT,
        CancerPathway.COLORECTAL,
    )
    app.record_receipt(c(hospital, "r", 0), r.id, AppRecStatus.OK, [])
    app.record_cancer_milestone(c(hospital, "m1", 5), r.id, CancerMilestone.FIRST_APPOINTMENT, None)
    if end is not None:
        app.end_cancer_pathway(c(hospital, "end", 10), r.id, end, None)
        return
    app.record_cancer_milestone(
        c(hospital, "m2", 14), r.id, CancerMilestone.INVESTIGATION_COMPLETED, Treatment.SURGERY
    )
    if treatment_day is not None:
        app.record_cancer_milestone(
            c(hospital, "m3", treatment_day), r.id, CancerMilestone.TREATMENT_START, None
        )


def lives_in(n: int, municipality: str) -> Envelope:
    return Envelope(
        event_id=f"6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d{n:04d}:1",
        aggregate_id=f"6f1c1f7e-5a54-5b38-9a0c-2b1f3f8d{n:04d}",
        aggregate_version=1,
        patient=patient(n),
        occurred_at="2020-01-01T00:00:00+00:00",
        recorded_at="2020-01-01T00:00:00+00:00",
        actor={"her_id": "", "org_kind": "REGISTRY"},
        correlation_id="c",
        causation_id="reg",
        data=reg.ResidenceRecorded(municipality_her_id=municipality, valid_from="2020-01-01"),
    )


def project_story(engine: Engine) -> None:
    """At HOSPITAL: three pathways treated in March–April (days 20, 34 and 38 after 2 March:
    two within the 35 days), one treated in May (day 61: over), one ended without treatment in
    March, one still running. At OTHER_HOSPITAL: one treated on 1 April, within."""
    app = ReferralsApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    colorectal(app, 0, HOSPITAL, 20)
    colorectal(app, 1, HOSPITAL, 34)
    colorectal(app, 2, HOSPITAL, 38)
    colorectal(app, 3, HOSPITAL, 61)  # 2 May
    colorectal(app, 4, HOSPITAL, None, CancerPathwayEndReason.CANCER_NOT_CONFIRMED)
    colorectal(app, 5, HOSPITAL, None)
    colorectal(app, 6, OTHER_HOSPITAL, 30)
    envelopes = list(iter_all_envelopes("referrals", app))
    envelopes += [lives_in(0, MUNICIPALITY.her_id), lives_in(2, MUNICIPALITY.her_id)]
    with engine.begin() as conn:
        project(conn, envelopes)


def test_the_share_within_standard_per_hospital_and_pathway(engine: Engine) -> None:
    project_story(engine)
    spring = views.cancer_pathway_shares(engine, *SPRING)
    by_hospital = {s.hospital_her_id: s for s in spring}
    ours = by_hospital[HOSPITAL.her_id]
    assert (ours.cancer_pathway, ours.measured, ours.within_standard) == ("COLORECTAL", 3, 2)
    assert ours.ended_without_treatment == 1  # counted, not in the share
    assert round(ours.share, 3) == 0.667
    other = by_hospital[OTHER_HOSPITAL.her_id]
    assert (other.measured, other.within_standard, other.share) == (1, 1, 1.0)
    (may,) = views.cancer_pathway_shares(engine, *MAY, hospital_her_ids=[HOSPITAL.her_id])
    assert (may.measured, may.within_standard, may.ended_without_treatment) == (1, 0, 0)


def test_a_municipalitys_figures_count_only_the_patients_living_there(engine: Engine) -> None:
    project_story(engine)
    (share,) = views.cancer_pathway_shares(engine, *SPRING, municipality_her_id=MUNICIPALITY.her_id)
    assert (share.hospital_her_id, share.measured, share.within_standard) == (HOSPITAL.her_id, 2, 1)


def test_a_period_without_pathways_has_nothing_to_count(engine: Engine) -> None:
    project_story(engine)
    january = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert views.cancer_pathway_shares(engine, *january) == []
