"""Caller identity from access tokens as HelseID issues them: asymmetric signatures checked
against the issuer's JWKS, iss/aud/iat/exp/jti required, the lifetime capped, revocation, and
the organisation number mapped to HER-id and kind by the organisation directory (a SQLite
file with the read model's table, as the pathway projector keeps it)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared import config, sql
from shared.access.model import metadata as access_metadata
from shared.access.model import organisations
from shared.actors import Actor, OrgKind
from shared.auth import (
    HER_ID_CLAIM,
    HPR_CLAIM,
    ORG_KIND_CLAIM,
    ORGNR_CHILD_CLAIM,
    ORGNR_PARENT_CLAIM,
    IssuerUnavailable,
    TokenVerifier,
    Unauthenticated,
)
from shared.config import ConfigError
from shared.directory import OrganisationDirectory
from shared.issuer import Issuer, open_issuer
from tests.support import make_fnr

GP = Actor(her_id="8134021", org_kind=OrgKind.GP, hpr="9144900")
HOSPITAL = Actor(her_id="59", org_kind=OrgKind.HOSPITAL, hpr="4210953")
CITIZEN = make_fnr(12, 3, 42, 480)
ISS = "https://helseid-sts.test.example"
AUD = "test:carepath"


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    made = Issuer.generate(ISS, AUD, jwks_path=tmp_path / "jwks.json")
    made.write_jwks(made.jwks_path)
    return made


#: The directory the verifier maps organisation numbers with: orgnr → (HER-id, kind, name).
DIRECTORY = {
    "983974899": ("8134021", "GP", "Fjordvik legesenter"),
    "974703300": ("4201", "MUNICIPALITY", "Fjordvik kommune"),
    "974760673": ("59", "HOSPITAL", "Sykehuset Fjordvik"),
}
UNKNOWN_ORGNR = "923609016"  # valid check digit, in no directory here


def directory_url(tmp_path: Path) -> str:
    """The read model's organisation table at tmp_path, created with DIRECTORY on first use."""
    url = f"sqlite:///{tmp_path}/pathway.sqlite"
    engine = sql.engine(url)
    if not sa.inspect(engine).has_table(organisations.name):
        access_metadata.create_all(engine, tables=[organisations])
        with engine.begin() as conn:
            conn.execute(
                organisations.insert(),
                [
                    {"her_id": h, "kind": k, "name": n, "parent_her_id": None, "orgnr": o}
                    for o, (h, k, n) in DIRECTORY.items()
                ],
            )
    engine.dispose()
    return url


def settings(tmp_path: Path, **env: str) -> config.TokenSettings:
    base = {
        "CAREPATH_TOKEN_ISSUER": ISS,
        "CAREPATH_TOKEN_AUDIENCE": AUD,
        "CAREPATH_JWKS_FILE": str(tmp_path / "jwks.json"),
        "REVOCATIONS_DATABASE_URL": f"sqlite:///{tmp_path}/revocations.sqlite",
        "ACCESS_DATABASE_URL": directory_url(tmp_path),
    }
    return config.token_settings({**base, **env})


@pytest.fixture
def verify(tmp_path: Path, issuer: Issuer) -> Iterator[TokenVerifier]:
    verifier = TokenVerifier.from_settings(settings(tmp_path))
    yield verifier
    verifier.close()


def refused(verify: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        verify(token)


def test_a_token_names_the_organisation_and_the_person(issuer: Issuer, verify: TokenVerifier):
    assert verify(issuer.mint(GP)) == GP


def test_a_citizens_token_names_the_person_by_helseids_pid_claim(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = issuer.mint(Actor.citizen(CITIZEN))
    assert jwt.decode(token, options={"verify_signature": False})[
        "helseid://claims/identity/pid"
    ] == (CITIZEN)
    assert verify(token) == Actor.citizen(CITIZEN)


def test_the_hpr_number_travels_in_helseids_claim(issuer: Issuer) -> None:
    claims = jwt.decode(issuer.mint(GP), options={"verify_signature": False})
    assert claims[HPR_CLAIM] == "9144900"
    assert claims[HER_ID_CLAIM] == "8134021" and claims[ORG_KIND_CLAIM] == "GP"
    assert {"iss", "aud", "iat", "exp", "jti", "sub", "scope", "client_id"} <= set(claims)


def test_helseids_organisation_numbers_are_accepted_and_kept_on_the_actor(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = issuer.mint(GP, **{ORGNR_PARENT_CLAIM: "974703300", ORGNR_CHILD_CLAIM: "983974899"})
    assert verify(token).orgnr == "983974899"  # the acting unit: the child


def helseid_token(issuer: Issuer, hpr: str | None = "9144900", **orgnr: str) -> str:
    """A token shaped as HelseID issues it: organisation numbers and the HPR-number, no
    carepath organisation claims."""
    claims = {HER_ID_CLAIM: None, ORG_KIND_CLAIM: None, "sub": hpr or "client"}
    return issuer.mint(Actor("", OrgKind.GP, hpr), **claims, **orgnr)


def test_a_helseid_token_is_the_organisation_the_directory_holds_its_number_for(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = helseid_token(issuer, **{ORGNR_CHILD_CLAIM: "983974899"})
    assert HER_ID_CLAIM not in jwt.decode(token, options={"verify_signature": False})
    assert verify(token) == Actor("8134021", OrgKind.GP, "9144900", orgnr="983974899")


def test_the_child_unit_names_the_organisation_before_the_parent(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    both = {ORGNR_PARENT_CLAIM: "974703300", ORGNR_CHILD_CLAIM: "974760673"}
    assert verify(helseid_token(issuer, **both)).her_id == "59"
    only_parent = verify(helseid_token(issuer, **{ORGNR_PARENT_CLAIM: "974703300"}))
    assert (only_parent.her_id, only_parent.org_kind) == ("4201", OrgKind.MUNICIPALITY)


def test_a_system_token_without_a_person_is_mapped_too(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    actor = verify(helseid_token(issuer, hpr=None, **{ORGNR_PARENT_CLAIM: "974760673"}))
    assert (actor.her_id, actor.org_kind, actor.hpr) == ("59", OrgKind.HOSPITAL, None)


def test_an_organisation_number_the_directory_does_not_hold_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = helseid_token(issuer, **{ORGNR_CHILD_CLAIM: UNKNOWN_ORGNR})
    refused(verify, token, "not an organisation of carepath's directory")
    # ... also when the token names a HER-id of its own: the directory decides
    refused(verify, issuer.mint(GP, **{ORGNR_CHILD_CLAIM: UNKNOWN_ORGNR}), "directory")


def test_a_carepath_her_id_claim_that_disagrees_with_the_directory_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    # GP's HER-id is 8134021; the hospital's number belongs to HER-id 59.
    token = issuer.mint(GP, **{ORGNR_CHILD_CLAIM: "974760673"})
    refused(verify, token, f"{HER_ID_CLAIM} 8134021 is not the organisation")


def test_a_carepath_kind_claim_that_disagrees_with_the_directory_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = issuer.mint(GP, **{ORGNR_CHILD_CLAIM: "983974899", ORG_KIND_CLAIM: "HOSPITAL"})
    refused(verify, token, f"{ORG_KIND_CLAIM} HOSPITAL is not the kind")


def test_carepath_claims_that_agree_with_the_directory_are_accepted(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = issuer.mint(GP, **{ORGNR_CHILD_CLAIM: "983974899"})
    assert verify(token) == Actor("8134021", OrgKind.GP, "9144900", orgnr="983974899")


def test_a_token_naming_no_organisation_at_all_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    refused(verify, helseid_token(issuer), "no organisation number")


def test_a_citizen_token_with_an_organisation_number_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    token = issuer.mint(Actor.citizen(CITIZEN), **{ORGNR_CHILD_CLAIM: "983974899"})
    refused(verify, token, "names no organisation number")


def test_two_entries_claiming_one_number_map_to_nobody(
    tmp_path: Path, issuer: Issuer, verify: TokenVerifier
) -> None:
    """A read model caught between two of the registry's events: refused, not guessed."""
    engine = sql.engine(directory_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(
            organisations.insert().values(
                her_id="90234",
                kind="HOSPITAL",
                name="Nordvik",
                parent_her_id=None,
                orgnr="974760673",
            )
        )
    engine.dispose()
    refused(verify, helseid_token(issuer, **{ORGNR_CHILD_CLAIM: "974760673"}), "directory")


def test_the_directory_is_read_once_per_refresh_not_once_per_call(
    tmp_path: Path, issuer: Issuer
) -> None:
    now = [1000.0]
    directory = OrganisationDirectory(directory_url(tmp_path), refresh=10.0, clock=lambda: now[0])
    statements: list[str] = []
    sa.event.listen(directory.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    verifier = TokenVerifier(
        settings(tmp_path),
        TokenVerifier.from_settings(settings(tmp_path)).revocations,
        directory=directory,
    )
    tokens = [helseid_token(issuer, **{ORGNR_CHILD_CLAIM: "983974899"}) for _ in range(3)]
    for _ in range(50):
        for token in tokens:
            assert verifier(token).her_id == "8134021"
    assert len(statements) == 1
    # The directory changes: the number now belongs to the hospital. Within the bound the
    # copy answers; after it, every token (remembered ones too) follows the directory.
    engine = sql.engine(directory_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(
            organisations.update().where(organisations.c.her_id == "8134021").values(orgnr=None)
        )
        conn.execute(
            organisations.update().where(organisations.c.her_id == "59").values(orgnr="983974899")
        )
    engine.dispose()
    now[0] += 5
    assert verifier(tokens[0]).her_id == "8134021"
    now[0] += 6
    assert verifier(tokens[0]) == Actor("59", OrgKind.HOSPITAL, "9144900", orgnr="983974899")
    assert len(statements) == 2
    verifier.close()


def test_an_unreadable_directory_is_unavailable_not_a_guess(tmp_path: Path, issuer: Issuer) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    verifier = TokenVerifier.from_settings(
        settings(tmp_path, ACCESS_DATABASE_URL=f"sqlite:///{empty}/no-directory.sqlite")
    )
    with pytest.raises(IssuerUnavailable, match="directory cannot be read"):
        verifier(helseid_token(issuer, **{ORGNR_CHILD_CLAIM: "983974899"}))
    # A token without an organisation number does not need the directory.
    assert verifier(issuer.mint(GP)) == GP
    verifier.close()


def test_an_organisation_number_with_a_wrong_check_digit_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    refused(verify, issuer.mint(GP, **{ORGNR_PARENT_CLAIM: "974703301"}), "organisation number")


def test_a_token_signed_with_another_key_is_refused(tmp_path: Path, verify: TokenVerifier):
    trusted_kid = json.loads((tmp_path / "jwks.json").read_text())["keys"][0]["kid"]
    forger = Issuer.generate(ISS, AUD)
    token = jwt.encode(
        jwt.decode(forger.mint(GP), options={"verify_signature": False}),
        forger.key,
        algorithm="ES256",
        headers={"kid": trusted_kid},
    )
    refused(verify, token, "Signature verification failed")


def test_a_key_the_issuer_adds_to_its_jwks_file_is_trusted_without_a_restart(
    tmp_path: Path, issuer: Issuer, verify: TokenVerifier
) -> None:
    rotated = Issuer.generate(ISS, AUD)
    assert verify(issuer.mint(GP)) == GP
    both = {"keys": [*issuer.jwks()["keys"], *rotated.jwks()["keys"]]}
    (tmp_path / "jwks.json").write_text(json.dumps(both))
    assert verify(rotated.mint(HOSPITAL)) == HOSPITAL


def test_a_token_from_a_key_the_issuer_never_published_is_refused(verify: TokenVerifier):
    refused(verify, Issuer.generate(ISS, AUD).mint(GP), "unknown key")


def test_an_unsigned_token_alg_none_is_refused(issuer: Issuer, verify: TokenVerifier) -> None:
    claims = jwt.decode(issuer.mint(GP), options={"verify_signature": False})
    token = jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.kid})
    refused(verify, token, "alg 'none' is not accepted")


def test_hs256_signed_with_the_public_key_as_secret_is_refused(
    issuer: Issuer, verify: TokenVerifier
) -> None:
    """Algorithm confusion: the issuer's public key is public, so an HMAC made with it proves
    nothing."""
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(issuer.mint(GP), options={"verify_signature": False})
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    signing_input = b".".join(
        jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, claims)
    )
    import hashlib
    import hmac

    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    token = (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()
    refused(verify, token, "alg 'HS256' is not accepted")


def test_a_token_from_another_issuer_is_refused(tmp_path: Path, issuer: Issuer) -> None:
    verify = TokenVerifier.from_settings(settings(tmp_path))
    refused(verify, issuer.mint(GP, iss="https://someone-else.example"), "(?i)issuer")


def test_a_token_for_another_api_is_refused(issuer: Issuer, verify: TokenVerifier) -> None:
    refused(verify, issuer.mint(GP, aud="nhn:another-api"), "(?i)audience")


@pytest.mark.parametrize("claim", ["iat", "exp", "jti", "iss", "aud"])
def test_a_token_without_a_required_claim_is_refused(
    issuer: Issuer, verify: TokenVerifier, claim: str
) -> None:
    refused(verify, issuer.mint(GP, **{claim: None}), claim)


def test_a_token_living_longer_than_an_hour_is_refused(issuer: Issuer, verify: TokenVerifier):
    refused(verify, issuer.mint(GP, ttl_seconds=10 * 365 * 24 * 3600), "longer than 3600 s")


def test_a_token_of_exactly_the_cap_is_accepted(issuer: Issuer, verify: TokenVerifier):
    assert verify(issuer.mint(GP, ttl_seconds=3600)) == GP


def test_an_expired_token_is_refused(issuer: Issuer, verify: TokenVerifier) -> None:
    now = int(time.time())
    refused(verify, issuer.mint(GP, iat=now - 600, nbf=now - 600, exp=now - 60), "expired")


def test_a_token_issued_in_the_future_is_refused(issuer: Issuer, verify: TokenVerifier):
    later = int(time.time()) + 600
    refused(verify, issuer.mint(GP, iat=later, nbf=later, exp=later + 60), "not yet valid")


def test_a_token_without_the_required_scope_is_refused(tmp_path: Path, issuer: Issuer) -> None:
    verify = TokenVerifier.from_settings(
        settings(tmp_path, CAREPATH_TOKEN_SCOPE="test:carepath/api")
    )
    refused(verify, issuer.mint(GP, scope="test:other/api"), "scope")
    assert verify(issuer.mint(GP, scope="openid test:carepath/api")) == GP


@pytest.mark.parametrize(
    "claims",
    [
        {HER_ID_CLAIM: "abc"},
        {ORG_KIND_CLAIM: "PHARMACY"},
        {HER_ID_CLAIM: None},
        {ORG_KIND_CLAIM: None},
        {"carepath://claims/roles": "SUPERVISOR"},
    ],
)
def test_tokens_with_bad_identity_claims_are_refused(
    issuer: Issuer, verify: TokenVerifier, claims: dict[str, Any]
) -> None:
    refused(verify, issuer.mint(GP, **claims), "invalid token claims")


def test_a_remembered_token_still_expires(tmp_path: Path, issuer: Issuer) -> None:
    """The server remembers a checked token, never past its expiry."""
    now = [time.time()]
    verify = TokenVerifier(
        settings(tmp_path),
        TokenVerifier.from_settings(settings(tmp_path)).revocations,
        clock=lambda: now[0],
    )
    token = issuer.mint(GP, ttl_seconds=60)
    assert verify(token) == verify(token) == GP
    now[0] += 61 + verify.settings.leeway
    refused(verify, token, "expired")


def test_a_revoked_token_is_refused_by_every_verifier_within_the_bound(
    tmp_path: Path, issuer: Issuer
) -> None:
    """The viewer revokes at logout; a server process that has the token remembered refuses
    it as soon as its copy of the list is older than the bound (1 s)."""
    now = [time.time()]
    server = TokenVerifier(
        settings(tmp_path),
        TokenVerifier.from_settings(settings(tmp_path)).revocations,
        clock=lambda: now[0],
    )
    server.revocations._clock = lambda: now[0]
    viewer = TokenVerifier.from_settings(settings(tmp_path))
    token = issuer.mint(GP)
    assert server(token) == GP
    assert viewer.revoke(token)
    now[0] += server.settings.revocation_refresh + 0.01
    refused(server, token, "revoked")
    refused(viewer, token, "revoked")


def test_revoking_an_invalid_token_does_nothing(verify: TokenVerifier) -> None:
    assert not verify.revoke("not-a-jwt")


def test_expired_revocations_are_pruned(tmp_path: Path, issuer: Issuer) -> None:
    verify = TokenVerifier.from_settings(settings(tmp_path))
    verify.revocations.revoke("old-token", time.time() - 10)
    verify.revocations.revoke("new-token", time.time() + 600)
    with verify.revocations.engine.connect() as conn:
        rows = {r[0] for r in conn.exec_driver_sql("SELECT jti FROM revoked_tokens")}
    assert rows == {"new-token"}


#: What the test's JWKS endpoint serves (a test may change it before the first fetch).
JWKS_BODY: dict[str, Any] = {}


@pytest.fixture
def jwks_server(issuer: Issuer) -> Iterator[str]:
    JWKS_BODY.clear()
    JWKS_BODY.update(issuer.jwks())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(JWKS_BODY).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/openid-configuration/jwks"
    server.shutdown()


def test_the_issuers_keys_can_come_from_its_jwks_url(
    tmp_path: Path, issuer: Issuer, jwks_server: str
) -> None:
    verify = TokenVerifier.from_settings(
        settings(tmp_path, CAREPATH_JWKS_FILE="", CAREPATH_JWKS_URL=jwks_server)
    )
    assert verify.settings.jwks_file is None
    assert verify(issuer.mint(GP)) == GP
    refused(verify, Issuer.generate(ISS, AUD).mint(GP), "unknown key")


def test_a_fetched_jwks_with_a_symmetric_key_is_refused_whole(
    tmp_path: Path, issuer: Issuer, jwks_server: str
) -> None:
    verify = TokenVerifier.from_settings(
        settings(tmp_path, CAREPATH_JWKS_FILE="", CAREPATH_JWKS_URL=jwks_server)
    )
    JWKS_BODY["keys"] = [*issuer.jwks()["keys"], {"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]
    with pytest.raises(IssuerUnavailable, match="symmetric"):
        verify(issuer.mint(GP))


def write_jwks(path: Path, keys: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"keys": keys}))


def test_a_jwks_with_a_symmetric_key_is_refused(tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}])
    with pytest.raises(ConfigError, match="symmetric"):
        TokenVerifier.from_settings(settings(tmp_path))


def test_a_short_rsa_key_is_refused(tmp_path: Path) -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(short))
    write_jwks(tmp_path / "jwks.json", [{**jwk, "kid": "short", "alg": "RS256"}])
    with pytest.raises(ConfigError, match="RSA-1024"):
        TokenVerifier.from_settings(settings(tmp_path))


def test_an_rsa_key_of_2048_bits_is_accepted_for_rs256(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    write_jwks(tmp_path / "jwks.json", [{**jwk, "kid": "rsa", "alg": "RS256"}])
    verify = TokenVerifier.from_settings(settings(tmp_path))
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": AUD,
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
        "sub": "9144900",
        ORG_KIND_CLAIM: "GP",
        HER_ID_CLAIM: "8134021",
        HPR_CLAIM: "9144900",
    }
    assert verify(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "rsa"})) == GP


def test_the_rfc_example_key_that_projects_ship_as_a_default_is_refused(tmp_path: Path):
    rfc7515_a3 = {
        "kty": "EC",
        "crv": "P-256",
        "kid": "dev-signing-key-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }
    write_jwks(tmp_path / "jwks.json", [rfc7515_a3])
    with pytest.raises(ConfigError, match="published example key"):
        TokenVerifier.from_settings(settings(tmp_path))


def test_without_a_configured_issuer_nothing_is_trusted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no token issuer configured"):
        config.token_settings({"CAREPATH_VAR_DIR": str(tmp_path)})


def test_the_jwks_must_come_from_one_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        settings(tmp_path, CAREPATH_JWKS_URL="https://helseid-sts.nhn.no/jwks")
    with pytest.raises(ConfigError, match="https"):
        settings(tmp_path, CAREPATH_JWKS_FILE="", CAREPATH_JWKS_URL="http://issuer.example/jwks")


def test_the_development_issuer_is_used_only_when_turned_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREPATH_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CAREPATH_DEV_ISSUER", raising=False)
    with pytest.raises(ConfigError, match="no token issuer configured"):
        config.token_settings({})
    dev = config.token_settings({"CAREPATH_DEV_ISSUER": "1"})
    assert dev.jwks_file == tmp_path / "var" / "dev-issuer" / "jwks.json"


def test_the_development_issuer_is_private_and_reused(tmp_path: Path) -> None:
    first = open_issuer(tmp_path / "var" / "dev-issuer")
    again = open_issuer(tmp_path / "var" / "dev-issuer")
    assert first.kid == again.kid
    assert (tmp_path / "var" / "dev-issuer").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "var" / "dev-issuer" / "signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_signing_key_others_can_read_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "dev-issuer"
    open_issuer(home)
    os.chmod(home / "signing-key.pem", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        open_issuer(home)


def test_var_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREPATH_VAR_DIR", str(tmp_path / "var"))
    assert config.var_dir().stat().st_mode & 0o777 == 0o700


def test_the_issuers_key_is_p256(issuer: Issuer) -> None:
    assert isinstance(issuer.key.curve, ec.SECP256R1)
    assert issuer.jwks()["keys"][0]["alg"] == "ES256"
