"""What the viewer shows: Norwegian dates in Oslo time, amounts, and the pathway picture."""

from __future__ import annotations

from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, pathway_pb2
from services.viewer import present
from shared import rules

HOSPITAL = common_pb2.ORGANISATION_KIND_HOSPITAL
MUNICIPALITY = common_pb2.ORGANISATION_KIND_MUNICIPALITY


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
    pic = present.picture(stay_pathway(False), datetime(2024, 11, 13, tzinfo=UTC))
    (bar,) = pic.bars
    hospital_y = dict((name, y) for y, name in pic.lanes)["Sykehus"]
    assert bar.css == "stay" and bar.open_end and bar.y == hospital_y - 9
    assert bar.x + bar.width == pic.width - present.RIGHT
    assert "Medisin 3" in bar.title and "pågår" in bar.title


def test_messages_are_marked_by_receipt_and_deadlines_turn_red_when_breached() -> None:
    pic = present.picture(stay_pathway(True), datetime(2024, 11, 14, tzinfo=UTC))
    kinds = {(m.kind, m.css) for m in pic.marks}
    assert ("message", "message ok") in kinds
    assert ("deadline", "deadline breached") in kinds
    assert ("event", "event") in kinds
    assert "1 melding, 1 åpen frist, 1 overskredet" in pic.description
