"""Who acts: the kinds of caller and the actor every event names (organisation, person).

Pure values, for the domain as much as for the token check (shared.auth, which makes an
`Actor` from a verified token): no JWT, no gRPC, no SQL here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from shared.ids import NationalId


class OrgKind(enum.StrEnum):
    """The kind of caller: a care organisation, the register adapter, or a citizen."""

    MUNICIPALITY = "MUNICIPALITY"
    GP = "GP"
    HOSPITAL = "HOSPITAL"
    #: The integration adapter bringing in the national registers' facts.
    REGISTRY = "REGISTRY"
    #: A person acting for themself (ID-porten via Helsenorge); never an organisation.
    CITIZEN = "CITIZEN"


#: Organisations that give care (they have care relationships with patients).
CARE_KINDS = frozenset({OrgKind.MUNICIPALITY, OrgKind.GP, OrgKind.HOSPITAL})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an organisation (HER-id and kind) and, when known, a person (HPR-number);
    or a citizen (kind CITIZEN, `pid` their own national id, no HER-id). `roles` are the
    token's roles (SUPERVISOR, system roles); they are never stored in events. `orgnr` is
    the organisation number HelseID names the caller by (the child unit's, else the parent's),
    when the token carries one."""

    her_id: str
    org_kind: OrgKind
    hpr: str | None = None
    roles: frozenset[str] = frozenset()
    pid: str | None = None
    orgnr: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The actor as stored in events: organisation and person, never a citizen's id
        (the envelope's patient already names them)."""
        data = {"her_id": self.her_id, "org_kind": self.org_kind.value}
        if self.hpr:
            data["hpr"] = self.hpr
        return data

    @classmethod
    def citizen(cls, pid: str) -> Actor:
        return cls(her_id="", org_kind=OrgKind.CITIZEN, pid=NationalId.parse(pid).value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        return cls(her_id=data["her_id"], org_kind=OrgKind(data["org_kind"]), hpr=data.get("hpr"))
