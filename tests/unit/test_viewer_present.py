"""What the viewer shows: Norwegian dates in Oslo time, amounts, the pathway picture,
organisations by their directory names, and the citizen's access list in plain words."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, municipal_pb2, pathway_pb2, referrals_pb2, registry_pb2
from services.viewer import present
from services.viewer.picture import RIGHT, picture
from shared import rules
from shared.access.table import RULES

HOSPITAL = common_pb2.ORGANISATION_KIND_HOSPITAL
MUNICIPALITY = common_pb2.ORGANISATION_KIND_MUNICIPALITY
GP = common_pb2.ORGANISATION_KIND_GP


def ts(*args: int) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(datetime(*args, tzinfo=UTC))  # type: ignore[misc]
    return t


def test_times_are_shown_in_oslo_time_the_norwegian_way() -> None:
    assert present.when(ts(2024, 11, 15, 9, 0)) == "15. nov. 2024 kl. 10:00"  # winter: UTC+1
    assert present.when(ts(2024, 6, 3, 7, 0)) == "3. jun. 2024 kl. 09:00"  # summer: UTC+2
    assert present.day(common_pb2.Date(year=2024, month=11, day=19)) == "19. november 2024"
    assert present.kroner(22980) == "22\u00a0980\u00a0kr"


def test_the_medication_date_means_the_end_of_that_day_in_oslo() -> None:
    end = rules.end_of_day(date(2024, 11, 1))
    assert end.astimezone(UTC) == datetime(2024, 11, 1, 22, 59, 59, 999999, tzinfo=UTC)


def stay_pathway(breached: bool) -> pathway_pb2.Pathway:
    reply = pathway_pb2.Pathway()
    reply.timeline.add(
        event_id="s:1", level=HOSPITAL, occurred_at=ts(2024, 11, 12, 13, 10), summary="Innlagt"
    )
    reply.timeline.add(
        event_id="s:2", level=HOSPITAL, occurred_at=ts(2024, 11, 12, 15, 0), summary="Melding"
    )
    reply.messages.add(
        event_id="s:2",
        name="Melding om innlagt pasient",
        to=common_pb2.Organisation(her_id="4201", kind=MUNICIPALITY),
        sent_at=ts(2024, 11, 12, 15, 0),
        receipt=common_pb2.APP_REC_STATUS_OK,
    )
    reply.stays.add(
        stay_id="s", hospital_her_id="59", ward="Medisin 3", admitted_at=ts(2024, 11, 12, 13, 10)
    )
    reply.tasks.add(
        description="Helseopplysninger",
        waiting_on=common_pb2.Organisation(her_id="59", kind=HOSPITAL),
        due=ts(2024, 11, 13, 13, 10),
        breached=breached,
    )
    return reply


def test_an_open_stay_is_a_bar_in_the_hospital_lane_running_to_the_end() -> None:
    pic = picture(stay_pathway(False), datetime(2024, 11, 13, tzinfo=UTC))
    (bar,) = pic.bars
    hospital_y = dict((name, y) for y, name in pic.lanes)["Sykehus"]
    assert bar.css == "stay" and bar.open_end and bar.y == hospital_y - 9
    assert bar.x + bar.width == pic.width - RIGHT
    assert "Medisin 3" in bar.title and "pågår" in bar.title


def test_a_started_service_is_a_bar_in_the_kommune_lane_and_a_death_a_line_across() -> None:
    reply = stay_pathway(False)
    reply.municipal_services.add(
        service_id="m",
        kind=municipal_pb2.MUNICIPAL_SERVICE_KIND_HOME_NURSING,
        state=municipal_pb2.MUNICIPAL_SERVICE_STATE_ENDED,
        municipality_her_id="4201",
        decided_at=ts(2024, 11, 12, 14, 0),
        started_at=ts(2024, 11, 12, 18, 0),
        ended_at=ts(2024, 11, 13, 6, 0),
        end_reason=municipal_pb2.SERVICE_END_REASON_PATIENT_DIED,
    )
    reply.died_at.CopyFrom(ts(2024, 11, 13, 6, 0))
    pic = picture(reply, datetime(2024, 11, 14, tzinfo=UTC))
    (service,) = [b for b in pic.bars if b.css == "service"]
    kommune_y = dict((name, y) for y, name in pic.lanes)["Kommune"]
    assert service.y == kommune_y - 9 and not service.open_end
    assert "Hjemmesykepleie" in service.title and "sluttet" in service.title
    assert pic.death_x is not None and "døde" in pic.death_title
    assert "Pasienten døde" in pic.description


def test_messages_are_marked_by_receipt_and_deadlines_turn_red_when_breached() -> None:
    pic = picture(stay_pathway(True), datetime(2024, 11, 14, tzinfo=UTC))
    kinds = {(m.kind, m.css) for m in pic.marks}
    assert ("message", "message ok") in kinds
    assert ("deadline", "deadline breached") in kinds
    assert ("event", "event") in kinds
    assert "1 melding, 1 åpen frist, 1 overskredet" in pic.description


def test_each_lane_shows_what_happened_at_its_level_and_what_waits_on_it() -> None:
    reply = stay_pathway(False)
    reply.timeline.add(
        event_id="g:1", level=GP, occurred_at=ts(2024, 11, 12, 9, 0), summary="Henvisning"
    )
    reply.tasks.add(
        description="Svar på forespørsel",
        waiting_on=common_pb2.Organisation(her_id="8134021", kind=GP),
        due=ts(2024, 11, 13, 9, 0),
    )
    pic = picture(reply, datetime(2024, 11, 13, tzinfo=UTC))
    lane = {y: name for y, name in pic.lanes}
    assert {(lane[m.y], m.kind) for m in pic.marks} == {
        ("Fastlege", "event"),
        ("Fastlege", "deadline"),
        ("Sykehus", "event"),
        ("Sykehus", "message"),
        ("Sykehus", "deadline"),
    }
    assert [(lane[b.y + 9], b.css) for b in pic.bars] == [("Sykehus", "stay")]


# --- organisations by name ---------------------------------------------------------------

DIRECTORY = [
    registry_pb2.OrganisationEntry(her_id="4201", kind=MUNICIPALITY, name="Fjordvik kommune"),
    registry_pb2.OrganisationEntry(her_id="59", kind=HOSPITAL, name="Sykehuset Fjordvik"),
    registry_pb2.OrganisationEntry(her_id="8134021", kind=GP, name="Fjordvik legesenter"),
]


def named(reply: pathway_pb2.Pathway) -> pathway_pb2.Pathway:
    reply.organisations.extend(DIRECTORY)
    return reply


def test_an_organisation_the_directory_knows_is_shown_by_its_name() -> None:
    names = present.Directory.of(DIRECTORY)
    assert names.name("4201", MUNICIPALITY) == "Fjordvik kommune"
    assert names.organisation(common_pb2.Organisation(her_id="59", kind=HOSPITAL)) == (
        "Sykehuset Fjordvik"
    )
    assert names.name("59", HOSPITAL, in_text=True) == "Sykehuset Fjordvik"  # a name stays


def test_an_organisation_the_directory_does_not_know_keeps_its_kind_and_her_id() -> None:
    names = present.Directory.of(DIRECTORY)
    assert names.name("4301", MUNICIPALITY) == "Kommune 4301"
    assert names.name("4301", MUNICIPALITY, in_text=True) == "kommune 4301"
    assert names.name("90234", HOSPITAL) == "Sykehus 90234"
    assert names.name("88001") == "Virksomhet 88001"


def test_the_picture_names_the_hospital_the_receiver_and_who_is_waited_on() -> None:
    pic = picture(named(stay_pathway(True)), datetime(2024, 11, 14, tzinfo=UTC))
    (stay,) = pic.bars
    assert "Sykehuset Fjordvik" in stay.title and "59" not in stay.title
    titles = " ".join(m.title for m in pic.marks)
    assert "Melding om innlagt pasient til Fjordvik kommune" in titles
    assert "venter på Sykehuset Fjordvik" in titles


def test_without_the_directory_the_picture_falls_back_to_kind_and_her_id() -> None:
    pic = picture(stay_pathway(True), datetime(2024, 11, 14, tzinfo=UTC))
    assert "Sykehus 59" in pic.bars[0].title
    assert "venter på sykehus 59" in " ".join(m.title for m in pic.marks)


def test_the_lanes_say_which_organisations_they_stand_for() -> None:
    reply = named(stay_pathway(False))
    reply.relations.residence_municipality_her_id = "4201"
    reply.relations.fastlege_her_id = "8134021"
    pic = picture(reply, datetime(2024, 11, 13, tzinfo=UTC))
    assert pic.who == [
        ("Kommune", "Fjordvik kommune"),
        ("Fastlege", "Fjordvik legesenter"),
        ("Sykehus", "Sykehuset Fjordvik"),
    ]


def test_the_payment_bar_names_the_paying_municipality() -> None:
    reply = named(stay_pathway(False))
    reply.payments.add(
        municipality_her_id="4201",
        ready_on=common_pb2.Date(year=2024, month=11, day=15),
        until=common_pb2.Date(year=2024, month=11, day=19),
        days=4,
        amount_nok=22980,
        payable=True,
    )
    pic = picture(reply, datetime(2024, 11, 20, tzinfo=UTC))
    waiting = next(b for b in pic.bars if b.css == "waiting")
    assert waiting.title.endswith("betales av Fjordvik kommune")


def test_the_payment_bar_says_why_a_period_is_not_payable() -> None:
    reply = named(stay_pathway(False))
    reply.payments.add(
        municipality_her_id="4201",
        ready_on=common_pb2.Date(year=2024, month=11, day=15),
        until=common_pb2.Date(year=2024, month=11, day=19),
        days=4,
        amount_nok=22980,
        payable=False,
        not_payable_reasons=[pathway_pb2.NOT_PAYABLE_REASON_ADMISSION_NOTICE_LATE],
        not_payable_text="Melding om innlagt pasient ble sendt senere enn 24 timer etter "
        "innleggelsen.",
    )
    pic = picture(reply, datetime(2024, 11, 20, tzinfo=UTC))
    waiting = next(b for b in pic.bars if b.css == "waiting")
    assert "ikke betalingspliktig" in waiting.label
    assert waiting.title.endswith("senere enn 24 timer etter innleggelsen.")


def test_where_the_patient_is_names_the_institution_and_the_ward() -> None:
    names = present.Directory.of(DIRECTORY)
    in_hospital = pathway_pb2.Location(
        kind=pathway_pb2.LOCATION_KIND_HOSPITAL, her_id="59", ward="Medisinsk sengepost 3"
    )
    assert present.place(in_hospital, names) == "Sykehuset Fjordvik, Medisinsk sengepost 3"
    nursing_home = pathway_pb2.Location(
        kind=pathway_pb2.LOCATION_KIND_SHORT_TERM_NURSING_HOME, her_id="88001"
    )
    assert present.place(nursing_home, names) == "Virksomhet 88001"
    assert present.place(pathway_pb2.Location(), names) == ""


def test_the_register_facts_name_the_fastlege_and_the_municipalities() -> None:
    relations = pathway_pb2.CareRelations(
        residence_municipality_her_id="4201",
        fastlege_her_id="8134021",
        fastlege_hpr_number="9144900",
    )
    assert present.register_facts(relations, present.Directory.of(DIRECTORY)) == [
        ("Fastlege", "Fjordvik legesenter (lege med HPR-nummer 9144900)"),
        ("Bostedskommune", "Fjordvik kommune"),
        ("Oppholdskommune", "Ingen registrert"),
    ]
    unknown = present.register_facts(pathway_pb2.CareRelations(), present.Directory())
    assert unknown[0] == ("Fastlege", "Ikke registrert")


def test_a_read_on_emergency_access_is_recognised() -> None:
    reply = pathway_pb2.Pathway(access_basis=common_pb2.ACCESS_BASIS_EMERGENCY)
    assert present.emergency(reply)
    reply.access_basis = common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY
    assert not present.emergency(reply)


def test_the_citizen_sees_only_open_referrals_in_plain_words() -> None:
    reply = named(pathway_pb2.Pathway())
    reply.summary.referrals.add(
        state=referrals_pb2.REFERRAL_STATE_ACCEPTED,
        priority=referrals_pb2.REFERRAL_PRIORITY_URGENT,
        cancer_pathway=referrals_pb2.CANCER_PATHWAY_COLORECTAL,
        sender_her_id="8134021",
        receiver_her_id="90234",
        sent_at=ts(2024, 9, 2, 6, 30),
        open=True,
    )
    reply.summary.referrals.add(state=referrals_pb2.REFERRAL_STATE_CANCELLED, open=False)
    (line,) = present.open_referrals(reply, present.Directory.of(reply.organisations))
    assert (line.sender, line.receiver) == ("Fjordvik legesenter", "Sykehus 90234")
    assert line.state == "Vurdert: du har rett til helsehjelp"
    assert (line.priority, line.pathway) == ("Haster", "Pakkeforløp for tykk- og endetarmskreft")
    assert line.sent == "2. sep. 2024 kl. 08:30"


# --- the citizen's access list -----------------------------------------------------------


def record(**fields: Any) -> registry_pb2.AccessRecord:
    return registry_pb2.AccessRecord(at=ts(2024, 11, 15, 9, 0), **fields)


COORDINATOR = common_pb2.Actor(
    organisation=common_pb2.Organisation(her_id="4201", kind=MUNICIPALITY),
    person=common_pb2.HealthPersonnel(hpr_number="1203921"),
)


def test_a_coordinators_read_is_shown_with_name_person_basis_and_purpose() -> None:
    line = present.access_line(
        record(
            actor=COORDINATOR,
            organisation_name="Fjordvik kommune",
            call="PathwayService/GetPathway",
            outcome="OK",
            basis=common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY,
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        )
    )
    assert line.when == "15. nov. 2024 kl. 10:00"  # Oslo time
    assert (line.who, line.person) == ("Fjordvik kommune", "HPR-nummer 1203921")
    assert line.what == "Så pasientforløpet ditt"
    assert line.basis == "Kommunen du bor i"
    assert line.purpose == "Koordinering av tjenestene dine"
    assert (line.outcome, line.refused, line.emergency) == ("Fikk tilgang", False, False)


def test_a_refused_attempt_by_an_unknown_organisation_is_shown_as_refused() -> None:
    line = present.access_line(
        record(
            actor=common_pb2.Actor(
                organisation=common_pb2.Organisation(her_id="4301", kind=MUNICIPALITY)
            ),
            call="PathwayService/GetPathway",
            outcome="PERMISSION_DENIED",
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        )
    )
    assert line.who == "Kommune 4301"
    assert line.refused and line.outcome == "Avvist: hadde ikke tilgang"
    assert line.basis == "Ingen"


def test_an_emergency_access_is_flagged_with_its_reason() -> None:
    line = present.access_line(
        record(
            actor=COORDINATOR,
            organisation_name="Fjordvik kommune",
            call="AccessService/RequestEmergencyAccess",
            outcome="OK",
            basis=common_pb2.ACCESS_BASIS_EMERGENCY,
            purpose=common_pb2.ACCESS_PURPOSE_EMERGENCY_CARE,
            emergency=True,
            emergency_reason=common_pb2.EMERGENCY_REASON_PATIENT_CANNOT_CONSENT,
        )
    )
    assert line.emergency and line.basis == "Akuttilgang"
    assert line.emergency_reason == "Du kunne ikke samtykke"
    assert line.what == "Ba om akuttilgang til opplysningene dine"


def test_the_citizens_own_reads_say_it_was_themself() -> None:
    line = present.access_line(
        record(
            call="AccessService/ListAccesses",
            outcome="OK",
            basis=common_pb2.ACCESS_BASIS_SELF,
            purpose=common_pb2.ACCESS_PURPOSE_CITIZEN_INSIGHT,
            by_self=True,
        )
    )
    assert (line.who, line.person, line.basis) == ("Deg selv", "", "Deg selv")


def test_every_call_basis_and_purpose_of_the_access_policy_has_plain_norwegian_words() -> None:
    assert {rule.name for rule in RULES.values()} <= set(present.CALL)
    assert set(common_pb2.AccessBasis.values()) <= set(present.BASIS)
    assert set(common_pb2.AccessPurpose.values()) <= set(present.PURPOSE)
    reasons = set(common_pb2.EmergencyReason.values()) - {0}
    assert reasons <= set(present.EMERGENCY_REASON)
    unknown = present.access_line(record(call="NewService/NewCall", outcome="ABORTED"))
    assert (unknown.what, unknown.outcome) == ("NewService/NewCall", "Feil (ABORTED)")


def test_a_vendor_systems_delivery_reads_as_such_in_the_citizens_access_list() -> None:
    line = present.access_line(
        record(
            call="VendorDelivery/fjordvik-ehr",
            outcome="DELIVERED",
            basis=common_pb2.ACCESS_BASIS_RESIDENCE_MUNICIPALITY,
            purpose=common_pb2.ACCESS_PURPOSE_HEALTH_CARE,
        )
    )
    assert line.what == "Fagsystemet fikk tilsendt en hendelse om deg (abonnement fjordvik-ehr)"
    assert (line.outcome, line.refused, line.basis) == ("Fikk tilsendt", False, "Kommunen du bor i")
