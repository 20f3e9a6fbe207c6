"""The access policy: one pure decision for every call of every service. Default deny.

A call is allowed when its rule (shared/access/table.py) lets the caller's kind call it, the
caller has the person or role the rule needs, no block of the patient holds against the caller
(for rules a block applies to), and one of the rule's bases holds: a care relationship of the
caller's organisation with the patient valid now, or a ground the policy checks itself (the
citizen's own data, the register adapter, a hospital admitting, an emergency grant).

No I/O: the facts (relationships, block, emergency grant) are gathered by
`shared.access.facts` and handed in, so the same function decides on every server and in the
unit tests.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.access.model import (
    OPERATOR_ROLE,
    RELATIONSHIPS,
    Basis,
    Purpose,
    Relationship,
    system_roles,
)
from shared.actors import CARE_KINDS, Actor, OrgKind


class Action(enum.StrEnum):
    READ = "READ"
    WRITE = "WRITE"


class TargetKind(enum.StrEnum):
    #: A patient identifier in the request (`field`).
    PATIENT = "PATIENT"
    #: A referral, stay or discharge by its id in the request (`field`), resolved to its
    #: patient and its own parties by the service (`resource`).
    RESOURCE = "RESOURCE"
    #: The caller's own organisation, named in the request (`field`) — a worklist.
    OWN_ORGANISATION = "OWN_ORGANISATION"
    #: A patient (`field`) or the caller's own organisation (`own_field`), whichever is given.
    PATIENT_OR_OWN_ORGANISATION = "PATIENT_OR_OWN_ORGANISATION"
    #: An organisation of one kind named in the request (`field`), not a patient: the rule's
    #: bases say whose — the caller's own (OWN_ORGANISATION), or any (OPERATOR).
    ORGANISATION = "ORGANISATION"
    #: A resource an organisation owns (a vendor's event subscription), named in the request
    #: (`field`) and resolved by the service (`resource`) to its owner: only the owning
    #: organisation may call; for anyone else — the resource known or not — the call is
    #: refused alike. About no patient.
    OWNED = "OWNED"
    #: No patient: the organisation directory, the caller's organisation's own review list.
    NONE = "NONE"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    field: str = ""
    resource: str = ""
    own_field: str = ""
    #: The kind of organisation an ORGANISATION target names.
    org_kind: OrgKind | None = None

    @classmethod
    def patient(cls, field: str = "patient") -> Target:
        return cls(TargetKind.PATIENT, field)

    @classmethod
    def resource_of(cls, resource: str, field: str) -> Target:
        return cls(TargetKind.RESOURCE, field, resource=resource)

    @classmethod
    def own_organisation(cls, field: str) -> Target:
        return cls(TargetKind.OWN_ORGANISATION, field)

    @classmethod
    def patient_or_own_organisation(cls, field: str, own_field: str) -> Target:
        return cls(TargetKind.PATIENT_OR_OWN_ORGANISATION, field, own_field=own_field)

    @classmethod
    def organisation(cls, field: str, kind: OrgKind) -> Target:
        return cls(TargetKind.ORGANISATION, field, org_kind=kind)

    @classmethod
    def owned(cls, resource: str, field: str) -> Target:
        return cls(TargetKind.OWNED, field, resource=resource)

    @classmethod
    def none(cls) -> Target:
        return cls(TargetKind.NONE)

    def describe(self) -> str:
        match self.kind:
            case TargetKind.PATIENT:
                return f"patient (`{self.field}`)"
            case TargetKind.RESOURCE:
                return f"the {self.resource}'s patient (`{self.field}`)"
            case TargetKind.OWN_ORGANISATION:
                return f"own organisation (`{self.field}`)"
            case TargetKind.PATIENT_OR_OWN_ORGANISATION:
                return f"patient (`{self.field}`) or own organisation (`{self.own_field}`)"
            case TargetKind.ORGANISATION:
                kind = self.org_kind.value.lower() if self.org_kind else "organisation"
                return f"a {kind} (`{self.field}`), no patient"
            case TargetKind.OWNED:
                return f"own {self.resource} (`{self.field}`)"
        return "no patient"


@dataclass(frozen=True)
class Rule:
    """Who may make one call, on what ground, for what purpose."""

    service: str
    method: str
    action: Action
    callers: frozenset[OrgKind]
    bases: tuple[Basis, ...]
    target: Target
    #: Care organisations must name the person (HPR) in the token. Reads by a system role of
    #: rules.toml are exempt; writes never are.
    person: bool
    #: The patient's block of the caller refuses this call (reads, and commands whose reply
    #: shows the shared medication list).
    blockable: bool
    purpose: Purpose
    #: The caller must say why (the request's `purpose` field).
    purpose_required: bool = False
    roles: frozenset[str] = frozenset()
    #: The call itself grants emergency access (akuttilgang) when the rest holds.
    opens_emergency: bool = False
    summary: str = ""

    @property
    def name(self) -> str:
        return f"{self.service}/{self.method}"


@dataclass(frozen=True)
class EmergencyGrant:
    """An akuttilgang in force: since when, its reason and the professional's words."""

    granted_at: str
    expires_at: str
    reason: str
    justification: str


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one caller and one patient, gathered elsewhere."""

    relationships: Sequence[Relationship] = ()
    blocked: bool = False
    emergency: EmergencyGrant | None = None
    #: The HER-id an ORGANISATION target names (a call about an organisation, no patient).
    organisation: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: Basis | None
    #: Why, for the audit log and the server's debug log; never sent to the caller (it could
    #: say whether the patient exists).
    reason: str
    emergency: EmergencyGrant | None = field(default=None, compare=False)


def deny(reason: str) -> Decision:
    return Decision(False, None, reason)


def check_caller(
    rule: Rule, actor: Actor, operators: frozenset[str] = frozenset()
) -> Decision | None:
    """What the caller alone decides (kind, person, roles): a refusal, or None to go on.
    A call on the OPERATOR ground is for carepath's own operating organisations
    (`operators`, shared.config.operator_her_ids) whatever roles a token claims."""
    if actor.org_kind not in rule.callers:
        return deny(f"a {actor.org_kind.value} caller may not call {rule.name}")
    if rule.roles and not actor.roles & rule.roles:
        return deny(f"{rule.name} needs the role {', '.join(sorted(rule.roles))}")
    if set(rule.bases) == {Basis.OPERATOR} and not is_operator(actor, operators):
        return deny(f"{rule.name} is for carepath's own operating organisation only")
    if rule.person and actor.org_kind in CARE_KINDS and not actor.hpr:
        system = rule.action is Action.READ and actor.roles & system_roles()
        if not system:
            return deny(f"{rule.name} needs a health professional (HPR-number) in the token")
    return None


def decide(
    rule: Rule,
    actor: Actor,
    patient: dict[str, str] | None,
    facts: Facts,
    now: str,
    operators: frozenset[str] = frozenset(),
) -> Decision:
    """Allow or deny `actor` calling `rule` about `patient` (None for calls about no
    patient) at stored time `now`, on the gathered `facts`; `operators` are the HER-ids of
    carepath's own operating organisations (none given: no one is an operator)."""
    refused = check_caller(rule, actor, operators)
    if refused is not None:
        return refused
    if rule.target.kind is TargetKind.ORGANISATION:
        for basis in rule.bases:
            ground = _organisation_ground(basis, actor, rule.target, facts.organisation, operators)
            if ground is not None:
                return Decision(True, basis, ground)
        return deny("another organisation's numbers")
    if patient is None:
        return Decision(True, rule.bases[0], "no patient: the caller's kind and role suffice")
    if rule.blockable and facts.blocked:
        return deny("the patient has blocked the caller")
    if rule.opens_emergency:
        return Decision(True, Basis.EMERGENCY, "emergency access requested")
    for basis in rule.bases:
        ground = _ground(basis, actor, patient, facts, now)
        if ground is not None:
            emergency = facts.emergency if basis is Basis.EMERGENCY else None
            return Decision(True, basis, ground, emergency)
    return deny("no care relationship with the patient")


def _ground(
    basis: Basis, actor: Actor, patient: dict[str, str], facts: Facts, now: str
) -> str | None:
    """Why `basis` holds for the caller and the patient now; None when it does not."""
    if basis in RELATIONSHIPS:
        held = any(
            r.basis is basis and r.her_id == actor.her_id and r.holds_at(now)
            for r in facts.relationships
        )
        return f"{basis.value} relationship" if held else None
    if basis is Basis.SELF:
        own = actor.org_kind is OrgKind.CITIZEN and actor.pid == patient["value"]
        return "the citizen's own data" if own else None
    if basis is Basis.REGISTER_KEEPER:
        return "the register adapter" if actor.org_kind is OrgKind.REGISTRY else None
    if basis is Basis.ADMITTING_HOSPITAL:
        admitting = actor.org_kind is OrgKind.HOSPITAL
        return "a hospital admitting the patient" if admitting else None
    if basis is Basis.EMERGENCY:
        in_force = facts.emergency is not None and actor.hpr
        return "emergency access in force" if in_force else None
    return None


def is_operator(actor: Actor, operators: frozenset[str]) -> bool:
    """One of carepath's operators: a REGISTRY organisation whose token has the role OPERATOR
    and that is one of carepath's own operating organisations (`operators`)."""
    return (
        actor.org_kind is OrgKind.REGISTRY
        and OPERATOR_ROLE in actor.roles
        and actor.her_id in operators
    )


def _organisation_ground(
    basis: Basis,
    actor: Actor,
    target: Target,
    organisation: str | None,
    operators: frozenset[str],
) -> str | None:
    """Why `basis` lets the caller ask about the organisation the request names; None when it
    does not. Its own: the caller is that organisation, and of the kind the call is about (a
    register or vendor organisation naming itself is not a municipality). Any: carepath's
    operators (`is_operator`)."""
    if basis is Basis.OWN_ORGANISATION:
        own = organisation == actor.her_id and actor.org_kind is target.org_kind
        return "the caller's own organisation" if own else None
    if basis is Basis.OPERATOR:
        return "one of carepath's operators" if is_operator(actor, operators) else None
    return None
