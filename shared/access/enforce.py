"""Enforcement: find what a call is about, decide with the policy, and put the call on record.

`AccessControl.admit` runs before a servicer sees a request: it finds the call's rule, reads
the coded purpose, finds the patient (from the request, or through the service's resolver for
a referral, stay or discharge), gathers the facts and decides. `AccessControl.record` writes
the call's audit rows with its outcome. The shared interceptor (shared/grpc_server.py) calls
both for every call of every service; servicers read the admitted call with `current_call()`.

A refusal says the same whether or not the patient or resource exists: an unknown referral,
stay or list is refused exactly as a known one the caller has no relationship with.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from shared import api, config
from shared.access.facts import FactStore
from shared.access.model import Basis, Purpose, Relationship
from shared.access.policy import Decision, Facts, Rule, TargetKind, decide, deny
from shared.access.table import rule_for
from shared.actors import Actor
from shared.audit.log import AuditLog, Entry
from shared.audit.log import migrate as migrate_audit
from shared.errors import InvalidArgument
from shared.sql import engine
from shared.times import utc_iso

PURPOSE_HEADER = "carepath-purpose"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
#: What every refused caller is told (never why: that could say the patient exists).
REFUSAL = "no access: no care relationship with the patient gives the caller this call"


@dataclass(frozen=True)
class Resource:
    """A referral, stay or discharge as its service knows it: the patient and the resource's
    own parties (the sender and receiver of a referral, the hospitals of a stay, ...)."""

    patient: dict[str, str]
    parties: list[Relationship] = field(default_factory=list)


#: A service's lookup of one kind of resource by id; None when it does not exist.
Resolver = Callable[[UUID], Resource | None]


@dataclass(frozen=True)
class Owner:
    """The organisation that owns a resource (a vendor's subscription): its HER-id, and the
    organisation number HelseID names it by, where the directory has one."""

    her_id: str
    orgnr: str | None = None

    def is_(self, actor: Actor) -> bool:
        return actor.her_id == self.her_id or bool(actor.orgnr and actor.orgnr == self.orgnr)


#: A service's lookup of the owner of one kind of owned resource by its name; None when it
#: does not exist.
OwnerResolver = Callable[[str], Owner | None]


class Refused(Exception):
    """The policy said no (→ PERMISSION_DENIED). Carries the admitted-so-far call for the
    audit row."""

    def __init__(self, call: Call) -> None:
        super().__init__(call.decision.reason)
        self.call = call


@dataclass
class Call:
    """One admitted (or refused) call: who, what, about which patient, on what basis."""

    request_id: str
    rule_name: str
    actor: Actor
    purpose: Purpose
    decision: Decision
    patient: dict[str, str] | None = None
    #: Patients a list or stream showed, with the basis of each (one audit row each).
    disclosed: dict[str, Basis] = field(default_factory=dict)
    #: The coded reason and justification of an emergency access requested by this call.
    emergency: tuple[str, str] | None = None

    @property
    def patient_key(self) -> str | None:
        return f"{self.patient['system']}|{self.patient['value']}" if self.patient else None


_current_call: contextvars.ContextVar[Call] = contextvars.ContextVar("carepath_call")


def current_call() -> Call:
    """The call being handled, as the access policy admitted it."""
    return _current_call.get()


def enter(call: Call) -> contextvars.Token[Call]:
    return _current_call.set(call)


def leave(token: contextvars.Token[Call]) -> None:
    _current_call.reset(token)


def _purpose(rule: Rule, request: Message, metadata: Mapping[str, Any]) -> Purpose:
    """The coded purpose: the request's `purpose` field, else the `carepath-purpose` header,
    else the call's default."""
    if "purpose" in request.DESCRIPTOR.fields_by_name:
        enum = request.DESCRIPTOR.fields_by_name["purpose"].enum_type
        number = getattr(request, "purpose")  # noqa: B009 - the field is found at run time
        assert enum is not None
        if number == 0:
            if rule.purpose_required:
                raise InvalidArgument("purpose", "is required (why the data is read; audited)")
            return rule.purpose
        value = enum.values_by_number.get(number)
        if value is None:
            raise InvalidArgument("purpose", "is not a known purpose")
        return Purpose(value.name.removeprefix("ACCESS_PURPOSE_"))
    header = metadata.get(PURPOSE_HEADER)
    if header:
        try:
            return Purpose(str(header).removeprefix("ACCESS_PURPOSE_"))
        except ValueError as exc:
            raise InvalidArgument(PURPOSE_HEADER, "is not a known AccessPurpose") from exc
    return rule.purpose


def _request_id(metadata: Mapping[str, Any]) -> str:
    given = str(metadata.get(REQUEST_ID_HEADER, ""))
    return given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


class AccessControl:
    def __init__(
        self,
        facts: FactStore,
        audit: AuditLog,
        resolvers: Mapping[str, Resolver] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owners: Mapping[str, OwnerResolver] | None = None,
        operators: frozenset[str] | None = None,
    ) -> None:
        self.facts = facts
        self.audit = audit
        self.resolvers = dict(resolvers or {})
        self.clock = clock
        self.owners = dict(owners or {})
        #: carepath's own operating organisations (OPERATOR_HER_IDS).
        self.operators = config.operator_her_ids() if operators is None else operators

    @classmethod
    def from_config(
        cls, service: str, resolvers: Mapping[str, Resolver] | None = None
    ) -> AccessControl:
        """The facts at `ACCESS_DATABASE_URL` (by default the pathway read model's database)
        and the audit log at `AUDIT_DATABASE_URL` (by default var/audit.sqlite), migrated;
        the process writes a chain of the log of its own, named after the service."""
        return cls.for_urls(
            config.access_database_url(), config.database_url("audit"), service, resolvers
        )

    @classmethod
    def for_urls(
        cls,
        facts_url: str,
        audit_url: str,
        service: str,
        resolvers: Mapping[str, Resolver] | None = None,
    ) -> AccessControl:
        # Small pools (shared.config.POOLS): the audit log's writer has its own connection and
        # a call holds a facts connection for one query (PostgreSQL's connections are few).
        audit_engine = engine(audit_url, config.pool("audit"))
        migrate_audit(audit_engine)
        facts = FactStore(engine(facts_url, config.pool("facts")), audit_engine)
        return cls(facts, AuditLog(audit_engine, service), resolvers)

    def for_service(self, resolvers: Mapping[str, Resolver]) -> AccessControl:
        """The same facts and audit log for another service's resolvers (several servers in
        one process share one of each)."""
        return AccessControl(
            self.facts, self.audit, resolvers, self.clock, self.owners, self.operators
        )

    def with_owners(self, owners: Mapping[str, OwnerResolver]) -> AccessControl:
        """The same, with the service's lookups of who owns its owned resources (the rules
        whose target is `TargetKind.OWNED`)."""
        return AccessControl(
            self.facts,
            self.audit,
            self.resolvers,
            self.clock,
            {**self.owners, **owners},
            self.operators,
        )

    def close(self) -> None:
        self.audit.close()
        self.facts.engine.dispose()
        self.audit.engine.dispose()

    def refused(self, name: str, actor: Actor, metadata: Mapping[str, Any], reason: str) -> Call:
        """A call refused before its patient is known (no rule for it, or a target or purpose
        field that cannot be read), for its audit row."""
        return Call(_request_id(metadata), name, actor, Purpose.HEALTH_CARE, deny(reason))

    def admit(
        self, rule: Rule, actor: Actor, request: Message, metadata: Mapping[str, Any]
    ) -> Call:
        """Decide the call. Returns the admitted call; raises `Refused` (→ PERMISSION_DENIED)
        or `InvalidArgument` (a target or purpose field the decision cannot be made on)."""
        call = Call(_request_id(metadata), rule.name, actor, rule.purpose, deny("not decided"))
        try:
            call.purpose = _purpose(rule, request, metadata)
            patient, parties, organisation = self._target(rule, actor, request)
        except _NoSuchResource:
            call.decision = deny("no such resource")
            raise Refused(call) from None
        except _NotOwnOrganisation:
            call.decision = deny("another organisation's list")
            raise Refused(call) from None
        except _NotOwner:
            call.decision = deny(f"not the owning organisation of the {rule.target.resource}")
            raise Refused(call) from None
        call.patient = patient
        now = self.clock()
        facts = Facts(organisation=organisation)
        if call.patient_key is not None:
            facts = self.facts.gather(rule, actor, call.patient_key, parties, now)
        call.decision = decide(rule, actor, patient, facts, utc_iso(now), self.operators)
        if not call.decision.allowed:
            raise Refused(call)
        return call

    def _target(
        self, rule: Rule, actor: Actor, request: Message
    ) -> tuple[dict[str, str] | None, list[Relationship], str | None]:
        """The patient a call is about with the resource's own parties, or the organisation
        it names (an ORGANISATION target, which the policy decides on)."""
        target, kind = rule.target, rule.target.kind
        if kind is TargetKind.PATIENT_OR_OWN_ORGANISATION:
            if request.HasField(target.field):
                kind = TargetKind.PATIENT
            elif getattr(request, target.own_field):
                kind, target = (
                    TargetKind.OWN_ORGANISATION,
                    type(target).own_organisation(target.own_field),
                )
            else:
                raise InvalidArgument("target", f"give a {target.field} or a {target.own_field}")
        if kind is TargetKind.PATIENT:
            return api.patient(request, target.field), [], None
        if kind is TargetKind.RESOURCE:
            resource_id = api.uuid_field(getattr(request, target.field), target.field)
            resource = self.resolvers[target.resource](resource_id)
            if resource is None:
                raise _NoSuchResource
            return resource.patient, resource.parties, None
        if kind is TargetKind.ORGANISATION:
            return None, [], api.her_id(getattr(request, target.field), target.field)
        if kind is TargetKind.OWNED:
            name = str(getattr(request, target.field)).strip()
            if not name:
                raise InvalidArgument(target.field, "is required")
            owner = self.owners[target.resource](name)
            if owner is None or not owner.is_(actor):
                raise _NotOwner
            return None, [], None
        if kind is TargetKind.OWN_ORGANISATION:
            her_id = api.her_id(getattr(request, target.field), target.field)
            if her_id != actor.her_id:
                raise _NotOwnOrganisation
        return None, [], None

    def entries(self, call: Call, outcome: str) -> list[Entry]:
        """The audit rows of a call: one per patient shown, else one for the call."""
        at = utc_iso(self.clock())
        actor, decision = call.actor, call.decision
        emergency = call.emergency or (
            (decision.emergency.reason, "") if decision.emergency else None
        )

        def entry(patient_key: str | None, basis: Basis | None) -> Entry:
            return Entry(
                at=at,
                request_id=call.request_id,
                actor_her_id=actor.her_id,
                actor_kind=actor.org_kind.value,
                actor_hpr=actor.hpr,
                patient_key=patient_key,
                call=call.rule_name,
                outcome=outcome,
                basis=basis.value if basis else "",
                purpose=call.purpose.value,
                emergency_reason=emergency[0] if emergency else None,
                emergency_text=(emergency[1] or None) if emergency else None,
                actor_orgnr=actor.orgnr,
            )

        if call.disclosed and outcome == "OK":
            return [entry(key, basis) for key, basis in sorted(call.disclosed.items())]
        return [entry(call.patient_key, decision.basis if decision.allowed else None)]

    def record(self, call: Call, outcome: str) -> None:
        """Put the call on record; returns once the rows are committed."""
        self.audit.record(self.entries(call, outcome))

    def still_allowed(self, call: Call) -> bool:
        """Whether the call's caller may still see its patient (an open stream asks with every
        change: a block or an ended relationship ends what it shows)."""
        rule = rule_for(f"/carepath.v1.{call.rule_name}")
        if rule is None or call.patient is None:
            return False
        now = self.clock()
        facts = self.facts.gather(rule, call.actor, call.patient_key or "", [], now)
        return decide(rule, call.actor, call.patient, facts, utc_iso(now), self.operators).allowed

    def record_disclosed(self, call: Call, members: Mapping[str, Basis]) -> None:
        """A stream showed these patients: one row each, committed before they are sent."""
        if members:
            shown = Call(call.request_id, call.rule_name, call.actor, call.purpose, call.decision)
            shown.disclosed = dict(members)
            self.record(shown, "OK")


class _NoSuchResource(Exception):
    pass


class _NotOwnOrganisation(Exception):
    pass


class _NotOwner(Exception):
    pass
