"""Caller identity: a bearer JWT whose organisation and person become the `actor` of every
event the caller causes.

Tokens are HS256-signed with the key from `shared.config.jwt_secret()`. Claims:
`org_her_id` (HER-id), `org_kind` (MUNICIPALITY/GP/HOSPITAL), optional `hpr` (HPR-number),
`sub`, `exp`. Run `python -m shared.auth --her-id 1234567 --kind GP` (or `make token`) to mint a
development token.
"""

from __future__ import annotations

import argparse
import enum
import time
from dataclasses import dataclass
from typing import Any

import jwt

from shared import config
from shared.ids import HerId, HprNumber, IdentifierError

ALGORITHM = "HS256"
ISSUER = "carepath"


class OrgKind(enum.StrEnum):
    MUNICIPALITY = "MUNICIPALITY"
    GP = "GP"
    HOSPITAL = "HOSPITAL"


class Unauthenticated(Exception):
    """The call has no valid token (→ UNAUTHENTICATED). The message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an organisation (HER-id and kind) and, when known, a person (HPR-number)."""

    her_id: str
    org_kind: OrgKind
    hpr: str | None = None

    def as_dict(self) -> dict[str, str]:
        data = {"her_id": self.her_id, "org_kind": self.org_kind.value}
        if self.hpr:
            data["hpr"] = self.hpr
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        return cls(her_id=data["her_id"], org_kind=OrgKind(data["org_kind"]), hpr=data.get("hpr"))


def mint_token(actor: Actor, secret: str, ttl_seconds: int = 8 * 3600) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": actor.hpr or actor.her_id,
        "org_her_id": actor.her_id,
        "org_kind": actor.org_kind.value,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if actor.hpr:
        claims["hpr"] = actor.hpr
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> Actor:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iss", "org_her_id", "org_kind"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from exc
    try:
        her_id = HerId.parse(str(claims["org_her_id"])).value
        kind = OrgKind(claims["org_kind"])
        hpr = HprNumber.parse(str(claims["hpr"])).value if claims.get("hpr") else None
    except (IdentifierError, ValueError) as exc:
        raise Unauthenticated(f"invalid token claims: {exc}") from exc
    return Actor(her_id=her_id, org_kind=kind, hpr=hpr)


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying the token."""
    return (("authorization", f"Bearer {token}"),)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mint a development bearer token for carepath.")
    parser.add_argument("--her-id", required=True, help="HER-id of the caller's organisation")
    parser.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    parser.add_argument("--hpr", help="HPR-number of the health professional")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    actor = Actor(
        her_id=HerId.parse(args.her_id).value,
        org_kind=OrgKind(args.kind),
        hpr=HprNumber.parse(args.hpr).value if args.hpr else None,
    )
    print(mint_token(actor, config.jwt_secret(), args.ttl))


if __name__ == "__main__":
    main()
