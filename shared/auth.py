"""Caller identity: a bearer JWT whose organisation and person become the `actor` of every
event the caller causes.

Tokens are HS256-signed with the key from `shared.config.jwt_secret()`. Claims:
`org_kind` (MUNICIPALITY/GP/HOSPITAL/REGISTRY, or CITIZEN), `org_her_id` (HER-id; not for
citizens), optional `hpr` (HPR-number), optional `roles` (e.g. ["SUPERVISOR"], or a system role
of rules.toml `[access] system_roles`), `sub`, `exp`. A CITIZEN token names the person by `pid`
(fødselsnummer or D-number, as ID-porten via Helsenorge does) and has no organisation.
Run `python -m shared.auth --her-id 1234567 --kind GP` or `--kind CITIZEN --pid 12034248069`
(or `make token`) to mint a development token.
"""

from __future__ import annotations

import argparse
import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from shared import config
from shared.ids import HerId, HprNumber, IdentifierError, NationalId

ALGORITHM = "HS256"
ISSUER = "carepath"


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


class Unauthenticated(Exception):
    """The call has no valid token (→ UNAUTHENTICATED). The message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an organisation (HER-id and kind) and, when known, a person (HPR-number);
    or a citizen (kind CITIZEN, `pid` their own national id, no HER-id). `roles` are the
    token's roles (SUPERVISOR, system roles); they are never stored in events."""

    her_id: str
    org_kind: OrgKind
    hpr: str | None = None
    roles: frozenset[str] = frozenset()
    pid: str | None = None

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


def mint_token(actor: Actor, secret: str, ttl_seconds: int = 8 * 3600) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": actor.pid or actor.hpr or actor.her_id,
        "org_kind": actor.org_kind.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if actor.org_kind is OrgKind.CITIZEN:
        claims["pid"] = actor.pid
    else:
        claims["org_her_id"] = actor.her_id
    if actor.hpr:
        claims["hpr"] = actor.hpr
    if actor.roles:
        claims["roles"] = sorted(actor.roles)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _verify(token: str, secret: str) -> tuple[Actor, float]:
    """The token's actor and its expiry (epoch seconds); raises Unauthenticated."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iss", "org_kind"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from exc
    try:
        kind = OrgKind(claims["org_kind"])
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValueError("roles must be a list of names")
        if kind is OrgKind.CITIZEN:
            if "org_her_id" in claims or "hpr" in claims or roles:
                raise ValueError("a citizen token names no organisation, HPR or roles")
            return Actor.citizen(str(claims["pid"])), float(claims["exp"])
        her_id = HerId.parse(str(claims["org_her_id"])).value
        hpr = HprNumber.parse(str(claims["hpr"])).value if claims.get("hpr") else None
    except (IdentifierError, ValueError, KeyError) as exc:
        raise Unauthenticated(f"invalid token claims: {exc}") from exc
    return Actor(her_id=her_id, org_kind=kind, hpr=hpr, roles=frozenset(roles)), float(
        claims["exp"]
    )


def verify_token(token: str, secret: str) -> Actor:
    """The caller a token names; raises Unauthenticated (expired, badly signed, bad claims)."""
    return _verify(token, secret)[0]


class TokenVerifier:
    """Checks bearer tokens for one server, remembering each valid token until it expires: a
    client sends the same token with every call, and checking its signature every time cost
    more than deciding the call. A token's claims cannot change under its signature, so a
    remembered answer is the answer; expiry is checked on every call."""

    def __init__(
        self, secret: str, size: int = 4096, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._size = size
        self._clock = clock
        self._seen: OrderedDict[str, tuple[Actor, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, token: str) -> Actor:
        with self._lock:
            hit = self._seen.get(token)
            if hit is not None:
                if hit[1] <= self._clock():
                    del self._seen[token]
                    raise Unauthenticated("token has expired")
                self._seen.move_to_end(token)
                return hit[0]
        actor, expires = _verify(token, self._secret)
        with self._lock:
            self._seen[token] = (actor, expires)
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
        return actor


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying the token."""
    return (("authorization", f"Bearer {token}"),)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mint a development bearer token for carepath.")
    parser.add_argument("--her-id", help="HER-id of the caller's organisation")
    parser.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    parser.add_argument("--hpr", help="HPR-number of the health professional")
    parser.add_argument("--pid", help="CITIZEN: the person's own fødselsnummer or D-number")
    parser.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    if args.kind == OrgKind.CITIZEN:
        if not args.pid:
            parser.error("--kind CITIZEN needs --pid")
        actor = Actor.citizen(args.pid)
    else:
        if not args.her_id:
            parser.error(f"--kind {args.kind} needs --her-id")
        actor = Actor(
            her_id=HerId.parse(args.her_id).value,
            org_kind=OrgKind(args.kind),
            hpr=HprNumber.parse(args.hpr).value if args.hpr else None,
            roles=frozenset(args.role),
        )
    print(mint_token(actor, config.jwt_secret(), args.ttl))


if __name__ == "__main__":
    main()
