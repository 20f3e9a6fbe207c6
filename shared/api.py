"""Conversions between common.proto messages and domain values, with the validation every
gRPC API applies the same way (errors name the field and the rule); among them the AppRec
receipts and the PLO messages they answer (shared.apprec), and the parties those messages make."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

from google.protobuf.timestamp_pb2 import Timestamp

from carepath.v1 import common_pb2, medications_pb2
from shared import tracing
from shared.access.model import Basis, Relationship
from shared.actors import Actor, OrgKind
from shared.apprec import AppRecStatus
from shared.domain import CommandContext
from shared.errors import InvalidArgument
from shared.ids import HerId, HprNumber, IdentifierError, Orgnr, parse_patient_identifier
from shared.medication_list import (
    Entry,
    EntryState,
    MedicationListView,
    ReconciliationSource,
)
from shared.times import utc_iso

M = TypeVar("M")

#: Clocks differ between systems; clinical times this far ahead of ours are still accepted.
CLOCK_SKEW = timedelta(minutes=5)
#: A command id and a correlation id become the events' causation and correlation ids, which
#: the public envelope allows only as printable ASCII without spaces (shared/events/envelope.py):
#: a command whose id is anything else is refused here, or its events could never be published.
_REFERENCE = re.compile(r"[\x21-\x7e]+")

ORG_KIND_TO_PB = {
    OrgKind.MUNICIPALITY: common_pb2.ORGANISATION_KIND_MUNICIPALITY,
    OrgKind.GP: common_pb2.ORGANISATION_KIND_GP,
    OrgKind.HOSPITAL: common_pb2.ORGANISATION_KIND_HOSPITAL,
    OrgKind.REGISTRY: common_pb2.ORGANISATION_KIND_REGISTRY,
}


def command_context(
    request: Any, actor: Actor, field: str = "metadata", now: datetime | None = None
) -> CommandContext:
    if not request.HasField(field):
        raise InvalidArgument(field, "is required (command_id and occurred_at)")
    meta: common_pb2.CommandMetadata = getattr(request, field)
    command_id = meta.command_id.strip()
    if not command_id:
        raise InvalidArgument(f"{field}.command_id", "is required (a client-chosen unique id)")
    if not meta.HasField("occurred_at"):
        raise InvalidArgument(f"{field}.occurred_at", "is required (when it happened)")
    occurred = meta.occurred_at.ToDatetime(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if occurred > now + CLOCK_SKEW:
        raise InvalidArgument(f"{field}.occurred_at", "is in the future")
    correlation = meta.correlation_id.strip() or command_id
    for name, value in (("command_id", command_id), ("correlation_id", correlation)):
        if not _REFERENCE.fullmatch(value):
            raise InvalidArgument(
                f"{field}.{name}", "must be printable ASCII without spaces (letters, digits, -_.:)"
            )
    tracing.handling(command_id, correlation)
    return CommandContext(
        command_id=command_id,
        occurred_at=occurred,
        actor=actor,
        correlation_id=correlation,
        traceparent=tracing.traceparent(),  # the RPC's span (shared.tracing.ServerInterceptor)
    )


def patient(request: Any, field: str = "patient") -> dict[str, str]:
    if not request.HasField(field):
        raise InvalidArgument(field, "is required")
    pb: common_pb2.PatientIdentifier = getattr(request, field)
    if not pb.system:
        raise InvalidArgument(f"{field}.system", "is required (identifier system OID)")
    try:
        national_id = parse_patient_identifier(pb.system, pb.value.strip())
    except IdentifierError as exc:
        raise InvalidArgument(f"{field}.value", str(exc)) from exc
    return {"system": national_id.system, "value": national_id.value}


def patient_to_pb(value: dict[str, str]) -> common_pb2.PatientIdentifier:
    return common_pb2.PatientIdentifier(system=value["system"], value=value["value"])


def her_id(value: str, field: str) -> str:
    try:
        return HerId.parse(value.strip()).value
    except IdentifierError as exc:
        raise InvalidArgument(field, str(exc)) from exc


def orgnr(value: str, field: str) -> str | None:
    """An optional organisation number (empty: none)."""
    value = value.strip()
    if not value:
        return None
    try:
        return Orgnr.parse(value).value
    except IdentifierError as exc:
        raise InvalidArgument(field, str(exc)) from exc


def hpr(value: str, field: str) -> str:
    try:
        return HprNumber.parse(value.strip()).value
    except IdentifierError as exc:
        raise InvalidArgument(field, str(exc)) from exc


def text(value: str, field: str) -> str:
    """A required text, trimmed. Its length was bounded before the call reached the API
    (shared/limits.toml, checked by shared.limits for every request)."""
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    return value


def uuid_field(value: str, field: str) -> UUID:
    """A required id field (UUID)."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidArgument(field, "is not a valid id (UUID)") from exc


def date_from_pb(pb: common_pb2.Date, field: str) -> date:
    try:
        return date(pb.year, pb.month, pb.day)
    except ValueError as exc:
        raise InvalidArgument(field, f"is not a valid date ({exc})") from exc


def date_to_pb(value: date) -> common_pb2.Date:
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def timestamp(value: datetime | str) -> Timestamp:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def actor_to_pb(actor: dict[str, str]) -> common_pb2.Actor:
    return common_pb2.Actor(
        organisation=common_pb2.Organisation(
            her_id=actor["her_id"],
            kind=ORG_KIND_TO_PB.get(
                OrgKind(actor["org_kind"]), common_pb2.ORGANISATION_KIND_UNSPECIFIED
            ),
        ),
        person=common_pb2.HealthPersonnel(hpr_number=actor.get("hpr", "")),
    )


def basis_to_pb(basis: str | None) -> common_pb2.AccessBasis.ValueType:
    """An access basis (shared.access.model.Basis value) in the contract; UNSPECIFIED: none."""
    if not basis:
        return common_pb2.ACCESS_BASIS_UNSPECIFIED
    return common_pb2.AccessBasis.Value(f"ACCESS_BASIS_{basis}")


def purpose_to_pb(purpose: str) -> common_pb2.AccessPurpose.ValueType:
    """A coded purpose (shared.access.model.Purpose value) in the contract."""
    return common_pb2.AccessPurpose.Value(f"ACCESS_PURPOSE_{purpose}")


# --- receipts (AppRec) and the messages they answer (shared.apprec) ----------------------------

_RECEIPT_FROM_PB = {
    common_pb2.APP_REC_STATUS_OK: AppRecStatus.OK,
    common_pb2.APP_REC_STATUS_REJECTED: AppRecStatus.REJECTED,
    common_pb2.APP_REC_STATUS_OK_ERROR_IN_PART: AppRecStatus.OK_ERROR_IN_PART,
}
_RECEIPT_TO_PB = {v: k for k, v in _RECEIPT_FROM_PB.items()}


def receipt_from_request(request: Any) -> tuple[AppRecStatus, list[dict[str, str]]]:
    """The `receipt` field of a request as (status, errors); INVALID_ARGUMENT when missing."""
    if not request.HasField("receipt"):
        raise InvalidArgument("receipt", "is required")
    if request.receipt.status not in _RECEIPT_FROM_PB:
        raise InvalidArgument("receipt.status", "is required (OK, REJECTED or OK_ERROR_IN_PART)")
    errors = [
        {"code": e.code.strip(), "description": e.description.strip()}
        for e in request.receipt.errors
    ]
    return _RECEIPT_FROM_PB[request.receipt.status], errors


def receipt_to_pb(receipt: dict[str, Any]) -> common_pb2.AppRec:
    return common_pb2.AppRec(
        status=_RECEIPT_TO_PB[AppRecStatus(receipt["status"])],
        errors=[common_pb2.AppRecError(**e) for e in receipt["errors"]],
    )


def message_to_pb(pb_class: Callable[..., M], message: dict[str, Any], type_pb: int) -> M:
    """A message with its receipt (or `unanswered`) as the service's reply type."""
    pb: Any = pb_class(
        message_id=message["message_id"],
        type=type_pb,
        from_her_id=message["from_her_id"],
        to_her_id=message["to_her_id"],
        sent_at=timestamp(message["sent_at"]),
        unanswered=message["receipt"] is None,
    )
    receipt = message["receipt"]
    if receipt is not None:
        pb.receipt.CopyFrom(receipt_to_pb(receipt))
        pb.receipt_recorded_at.CopyFrom(timestamp(receipt["recorded_at"]))
    return cast(M, pb)


def message_parties(
    messages: Iterable[dict[str, Any]], municipal_types: Collection[str], open_until: str | None
) -> list[Relationship]:
    """The parties a resource's messages make (for the access policy, at once, from the
    resource itself): each message's receiver, for its receipt (RECEIPT_DUE: it owes it, or
    repeats the one it gave, which returns the first result; a second one the message itself
    refuses), and each municipality sent one of `municipal_types` about a stay, while the stay
    is open (MESSAGE_RECEIVER; `open_until`: when the stay closed, None while open)."""
    parties = [Relationship.party(m["to_her_id"], Basis.RECEIPT_DUE) for m in messages]
    parties += [
        Relationship(m["to_her_id"], Basis.MESSAGE_RECEIVER, utc_iso(m["sent_at"]), open_until)
        for m in messages
        if m["type"] in municipal_types
    ]
    return parties


# --- the shared medication list (services/medications and the pathway answer with it) ---------

MEDICATION_STATE_TO_PB = {
    s: medications_pb2.MedicationState.Value(f"MEDICATION_STATE_{s.value}") for s in EntryState
}
SOURCE_FROM_PB = {
    medications_pb2.ReconciliationSource.Value(f"RECONCILIATION_SOURCE_{s.value}"): s
    for s in ReconciliationSource
}
SOURCE_TO_PB = {s.value: pb for pb, s in SOURCE_FROM_PB.items()}


def medication_entry_to_pb(entry: Entry) -> medications_pb2.MedicationEntry:
    return medications_pb2.MedicationEntry(
        entry_id=entry.entry_id,
        medication=medications_pb2.Medication(atc_code=entry.atc_code, name=entry.name),
        dose=entry.dose,
        reason=entry.reason or "",
        state=MEDICATION_STATE_TO_PB[entry.state],
        source=common_pb2.Organisation(
            her_id=entry.source_her_id, kind=ORG_KIND_TO_PB[OrgKind(entry.source_kind)]
        ),
        prescribed_by=actor_to_pb(dict(entry.prescribed_by)),
        prescribed_at=timestamp(entry.prescribed_at),
        last_changed_at=timestamp(entry.last_changed_at),
        last_changed_by=actor_to_pb(dict(entry.last_changed_by)),
        state_reason=entry.state_reason or "",
    )


def medication_list_to_pb(view: MedicationListView) -> medications_pb2.MedicationList:
    pb = medications_pb2.MedicationList(
        list_id=str(view.list_id),
        patient=patient_to_pb(dict(view.patient)),
        entries=[medication_entry_to_pb(e) for e in view.ordered_entries()],
        version=view.version,
    )
    if view.as_of is not None:
        pb.as_of.CopyFrom(timestamp(view.as_of))
    if view.last_reconciliation is not None:
        rec = view.last_reconciliation
        pb.last_reconciliation.CopyFrom(
            medications_pb2.Reconciliation(
                reconciled_at=timestamp(rec.reconciled_at),
                reconciled_by=actor_to_pb(dict(rec.reconciled_by)),
                sources=[SOURCE_TO_PB[s] for s in rec.sources],
                note=rec.note or "",
            )
        )
    return pb
