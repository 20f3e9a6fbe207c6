"""Caller identity from bearer tokens."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import (
    Actor,
    OrgKind,
    TokenVerifier,
    Unauthenticated,
    mint_token,
    verify_token,
)

SECRET = "unit-test-secret-0123456789-abcdefgh"


def test_a_token_names_the_organisation_and_the_person() -> None:
    actor = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
    assert verify_token(mint_token(actor, SECRET), SECRET) == actor


def test_an_expired_token_is_refused() -> None:
    token = mint_token(Actor("59", OrgKind.HOSPITAL), SECRET, ttl_seconds=-10)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(token, SECRET)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = mint_token(Actor("59", OrgKind.HOSPITAL), "another-key-0123456789-0123456789")
    with pytest.raises(Unauthenticated, match="invalid token"):
        verify_token(token, SECRET)


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "carepath", "exp": 9999999999, "org_her_id": "abc", "org_kind": "GP"},
        {"iss": "carepath", "exp": 9999999999, "org_her_id": "59", "org_kind": "PHARMACY"},
        {"iss": "carepath", "exp": 9999999999, "org_kind": "GP"},
        {"iss": "someone-else", "exp": 9999999999, "org_her_id": "59", "org_kind": "GP"},
    ],
)
def test_tokens_with_bad_claims_are_refused(claims: dict[str, object]) -> None:
    with pytest.raises(Unauthenticated):
        verify_token(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)


def test_a_remembered_token_still_expires() -> None:
    """The server remembers a checked token, never past its expiry."""
    now = [time.time()]
    verify = TokenVerifier(SECRET, clock=lambda: now[0])
    gp = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
    token = mint_token(gp, SECRET, ttl_seconds=60)
    assert verify(token) == verify(token) == gp
    now[0] += 61
    with pytest.raises(Unauthenticated, match="expired"):
        verify(token)
