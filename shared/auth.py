"""Caller identity: an access token, as HelseID issues it, whose organisation and person become
the `actor` of every event the caller causes.

Tokens are JWTs signed asymmetrically (ES256, or RS256) by an issuer carepath trusts, checked
against the issuer's JWKS (`CAREPATH_JWKS_FILE` or `CAREPATH_JWKS_URL`), for the configured
`iss` and `aud` (shared/config.py `token_settings`). `iat`, `exp` and `jti` are required, the
lifetime is capped and the clock-skew leeway small (`[tokens]` in rules.toml); a token whose
`jti` is on the revocation list (shared/revocation.py) is refused. `alg` is ES256 or RS256 only:
never `none`, never HS* (a public key is never used as an HMAC secret).

Claims (docs/identity.md has the table and the reasons):
- HelseID's own where they exist: `helseid://claims/hpr/hpr_number` (the health
  professional's HPR-number), `helseid://claims/identity/pid` (a citizen's fødselsnummer or
  D-number), `helseid://claims/client/claims/orgnr_child` / `orgnr_parent` (the organisation
  number: the child unit's, else the parent's), `scope`, `client_id`, `sub`;
- carepath's, namespaced, where HelseID has none: `carepath://claims/roles` (e.g.
  ["SUPERVISOR"], or a system role of rules.toml `[access] system_roles`), and, for tokens
  without an organisation number (the development issuer's, a citizen's),
  `carepath://claims/org/her_id` and `carepath://claims/org/kind`
  (MUNICIPALITY/GP/HOSPITAL/REGISTRY, or CITIZEN).

A token with an organisation number is the organisation the registry's directory says holds
that number (shared/directory.py): its HER-id and kind come from there, on every call, from a
copy at most `[tokens] directory_refresh_seconds` old. A number the directory does not hold is
UNAUTHENTICATED; a token that also carries the carepath HER-id or kind claims must agree with
the directory, else it is UNAUTHENTICATED too.

`python -m shared.auth --her-id 1234567 --kind GP` (or `make token`) mints a token from the
local development issuer (shared/issuer.py; only with CAREPATH_DEV_ISSUER=1), with the
organisation's number from the directory when it has one; `--orgnr N` mints one shaped as
HelseID issues it (no carepath organisation claims).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from stdnum.no import orgnr as stdnum_orgnr

from shared import config
from shared.actors import Actor, OrgKind
from shared.config import ConfigError, TokenSettings
from shared.directory import DirectoryEntry, OrganisationDirectory
from shared.ids import HerId, HprNumber, IdentifierError
from shared.revocation import RevocationList
from shared.rules import rules

#: The only signature algorithms accepted: asymmetric, as HelseID signs (ES256 preferred).
ALGORITHMS = ("ES256", "RS256")
#: The `typ` header values HelseID's access tokens carry.
TOKEN_TYPES = ("at+jwt", "JWT")
MIN_RSA_BITS = 2048
EC_CURVES = ("secp256r1",)

HPR_CLAIM = "helseid://claims/hpr/hpr_number"
PID_CLAIM = "helseid://claims/identity/pid"
ORGNR_PARENT_CLAIM = "helseid://claims/client/claims/orgnr_parent"
ORGNR_CHILD_CLAIM = "helseid://claims/client/claims/orgnr_child"
HER_ID_CLAIM = "carepath://claims/org/her_id"
ORG_KIND_CLAIM = "carepath://claims/org/kind"
ROLES_CLAIM = "carepath://claims/roles"

#: Public keys printed in the JOSE RFCs' examples (their private halves are public too), and
#: therefore in many projects' "development keys": never trusted. EC by (curve, x); RSA by the
#: start of the modulus.
KNOWN_PUBLIC_EC_X = {
    ("P-256", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"),  # RFC 7515 A.3
    ("P-256", "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"),  # RFC 7517 A.1/A.2
}
KNOWN_PUBLIC_RSA_N = (
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbj",  # RFC 7515 A.2
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWh",  # RFC 7517 A.1/A.2
)


class Unauthenticated(Exception):
    """The call has no valid token (→ UNAUTHENTICATED). The message says what is wrong."""


class IssuerUnavailable(Exception):
    """The issuer's keys or the revocation list cannot be read now (→ UNAVAILABLE, retry)."""


def actor_claims(actor: Actor) -> dict[str, Any]:
    """The identity claims naming `actor` (an issuer adds iss, aud, iat, exp, jti, ...): the
    carepath organisation claims, and the organisation number when the actor has one (as
    HelseID names the organisation; the verifier then checks both against the directory)."""
    claims: dict[str, Any] = {
        "sub": actor.pid or actor.hpr or actor.her_id,
        ORG_KIND_CLAIM: actor.org_kind.value,
    }
    if actor.org_kind is OrgKind.CITIZEN:
        claims[PID_CLAIM] = actor.pid
    else:
        claims[HER_ID_CLAIM] = actor.her_id
    if actor.hpr:
        claims[HPR_CLAIM] = actor.hpr
    if actor.roles:
        claims[ROLES_CLAIM] = sorted(actor.roles)
    if actor.orgnr:
        claims[ORGNR_PARENT_CLAIM] = actor.orgnr
    return claims


def _orgnr(claims: dict[str, Any]) -> str | None:
    """The acting unit's organisation number (child, else parent), checked (mod 11)."""
    value = claims.get(ORGNR_CHILD_CLAIM) or claims.get(ORGNR_PARENT_CLAIM)
    if value is None:
        return None
    try:
        return str(stdnum_orgnr.validate(str(value)))
    except Exception as exc:
        raise ValueError(f"{value!r} is not an organisation number") from exc


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a checked token's claims say, before the directory is asked. Without `orgnr`,
    `actor` is the caller; with it, the directory names the organisation (`actor` then has
    an empty HER-id until `resolve` fills it in), and `her_id`/`kind` are the carepath claims
    the token carried too, which must agree."""

    actor: Actor
    orgnr: str | None = None
    her_id: str | None = None
    kind: OrgKind | None = None


def claimed(claims: dict[str, Any]) -> Claimed:
    """What a verified token's claims say; raises ValueError/KeyError/IdentifierError."""
    roles = claims.get(ROLES_CLAIM) or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValueError("roles must be a list of names")
    kind = OrgKind(claims[ORG_KIND_CLAIM]) if ORG_KIND_CLAIM in claims else None
    if kind is OrgKind.CITIZEN:
        if HER_ID_CLAIM in claims or HPR_CLAIM in claims or roles:
            raise ValueError("a citizen token names no organisation, HPR or roles")
        if ORGNR_CHILD_CLAIM in claims or ORGNR_PARENT_CLAIM in claims:
            raise ValueError("a citizen token names no organisation number")
        return Claimed(Actor.citizen(str(claims[PID_CLAIM])))
    orgnr = _orgnr(claims)
    her_id = HerId.parse(str(claims[HER_ID_CLAIM])).value if HER_ID_CLAIM in claims else None
    hpr = HprNumber.parse(str(claims[HPR_CLAIM])).value if claims.get(HPR_CLAIM) else None
    if orgnr is None:
        if her_id is None or kind is None:
            raise ValueError(
                "no organisation number (orgnr_child/orgnr_parent), nor carepath's her_id and kind"
            )
        actor = Actor(her_id=her_id, org_kind=kind, hpr=hpr, roles=frozenset(roles))
        return Claimed(actor)
    # The directory names the organisation; the kind here is a placeholder it replaces.
    actor = Actor(her_id="", org_kind=kind or OrgKind.MUNICIPALITY, hpr=hpr, roles=frozenset(roles))
    return Claimed(actor, orgnr, her_id, kind)


def _lookup(directory: OrganisationDirectory, orgnr: str) -> DirectoryEntry | None:
    try:
        return directory.lookup(orgnr)
    except Exception as exc:
        raise IssuerUnavailable(f"the organisation directory cannot be read ({exc})") from exc


def resolve(found: Claimed, entry: DirectoryEntry | None) -> Actor:
    """The caller a token with an organisation number names, by the directory's `entry` for
    that number; raises Unauthenticated when there is none or the carepath claims disagree."""
    assert found.orgnr is not None
    if entry is None:
        raise Unauthenticated(
            f"organisation number {found.orgnr} is not an organisation of carepath's directory"
        )
    kind = OrgKind(entry.kind)
    if found.her_id is not None and found.her_id != entry.her_id:
        raise Unauthenticated(
            f"invalid token claims: {HER_ID_CLAIM} {found.her_id} is not the organisation "
            f"the directory holds organisation number {found.orgnr} for"
        )
    if found.kind is not None and found.kind is not kind:
        raise Unauthenticated(
            f"invalid token claims: {ORG_KIND_CLAIM} {found.kind.value} is not the kind of "
            f"organisation number {found.orgnr} in the directory"
        )
    return replace(found.actor, her_id=entry.her_id, org_kind=kind, orgnr=found.orgnr)


# --- the issuer's keys ------------------------------------------------------------------------


def check_key(jwk: jwt.PyJWK) -> None:
    """Refuse a key carepath must never trust: symmetric (`oct`), RSA under 2048 bits, an EC
    curve other than P-256, or a key published as an example. Raises ConfigError."""
    raw = jwk._jwk_data
    kid = raw.get("kid", "?")
    key = jwk.key
    if raw.get("kty") == "oct":
        raise ConfigError(f"JWKS key {kid!r} is symmetric (oct): only public keys are accepted")
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(
                f"JWKS key {kid!r} is RSA-{key.key_size}: at least {MIN_RSA_BITS} bits needed"
            )
        if str(raw.get("n", "")).startswith(KNOWN_PUBLIC_RSA_N):
            raise ConfigError(f"JWKS key {kid!r} is a published example key")
    elif isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            raise ConfigError(f"JWKS key {kid!r} is on curve {key.curve.name}: P-256 only")
        if (raw.get("crv"), raw.get("x")) in KNOWN_PUBLIC_EC_X:
            raise ConfigError(f"JWKS key {kid!r} is a published example key")
    else:
        raise ConfigError(f"JWKS key {kid!r} is of an unsupported type ({raw.get('kty')})")
    if jwk.algorithm_name not in ALGORITHMS:
        raise ConfigError(f"JWKS key {kid!r} is for {jwk.algorithm_name}: ES256 or RS256 only")


def check_key_set(keys: jwt.PyJWKSet) -> None:
    """Every key of a JWKS must pass `check_key`: one bad key refuses the whole set."""
    if not keys.keys:
        raise ConfigError("the JWKS holds no usable key")
    for key in keys.keys:
        check_key(key)


def parse_jwks(text: str) -> jwt.PyJWKSet:
    try:
        data = json.loads(text)
        raw_keys = data["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the JWKS is not a JSON key set ({exc})") from exc
    if any(isinstance(k, dict) and k.get("kty") == "oct" for k in raw_keys):
        raise ConfigError("the JWKS holds a symmetric (oct) key: only public keys are accepted")
    try:
        keys = jwt.PyJWKSet(raw_keys)
    except jwt.PyJWTError as exc:
        raise ConfigError(f"the JWKS cannot be read ({exc})") from exc
    check_key_set(keys)
    return keys


class FileKeys:
    """The issuer's public keys from a JWKS file, read again when the file changes (looked at
    every few seconds): a rotated key is picked up and a withdrawn one dropped without a
    restart. A file that turns bad fails closed (IssuerUnavailable) until it is mended."""

    #: How often the file's modification time is looked at.
    CHECK_SECONDS = 5.0

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime = -1.0
        self._checked = time.monotonic()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
            if mtime == self._mtime:
                return
            keys = parse_jwks(self._path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the JWKS file {self._path} ({exc})") from exc
        self._keys = {str(k.key_id): k for k in keys.keys}
        self._mtime = mtime

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = time.monotonic()
            if kid not in self._keys or now - self._checked > self.CHECK_SECONDS:
                self._checked = now
                try:
                    self._load()
                except ConfigError as exc:
                    self._keys, self._mtime = {}, -1.0
                    raise IssuerUnavailable(str(exc)) from exc
            try:
                return self._keys[kid]
            except KeyError:
                raise Unauthenticated(f"token signed with an unknown key {kid!r}") from None


class UrlKeys:
    """The issuer's public keys from its JWKS endpoint (PyJWKClient: the set is cached for
    5 minutes and fetched again for an unknown `kid`, at most once per 30 s). A fetched set
    with a key carepath must not trust is refused whole."""

    def __init__(self, url: str) -> None:
        self._client = jwt.PyJWKClient(url, lifespan=300, timeout=10, cooldown_duration=30)

    def key(self, kid: str) -> jwt.PyJWK:
        try:
            key = self._client.get_signing_key(kid)
            keys = self._client.get_jwk_set()
        except jwt.PyJWKClientConnectionError as exc:
            raise IssuerUnavailable(f"the issuer's JWKS cannot be fetched ({exc})") from exc
        except jwt.PyJWKClientError as exc:
            if "Unable to find a signing key" in str(exc):
                raise Unauthenticated(f"token signed with an unknown key {kid!r}") from exc
            raise IssuerUnavailable(f"the issuer's JWKS cannot be read ({exc})") from exc
        try:
            check_key_set(keys)
        except ConfigError as exc:
            raise IssuerUnavailable(f"the issuer's JWKS is refused: {exc}") from exc
        return key


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    """A checked token: who it names, its id and when it expires (epoch seconds)."""

    actor: Actor
    jti: str
    expires_at: float


@dataclass(slots=True)
class _Checked:
    """A token whose signature and claims were checked: remembered until it expires, with
    its answer for the directory entry it was last mapped by (the entry objects stay the same
    until the directory's copy is read again, so an unchanged entry costs no new answer)."""

    claimed: Claimed
    jti: str
    expires_at: float
    answer: Verified | None = None  # a token without an organisation number
    #: The directory entry it was last mapped by, and its answer then (one tuple: assigned
    #: at once, so concurrent calls never pair one entry with another's answer).
    mapping: tuple[DirectoryEntry, Verified] | None = None


class TokenVerifier:
    """Checks bearer tokens for one process, against one issuer's keys, and the revocation
    list.

    A valid token is remembered until it expires: a client sends the same token with every
    call, and checking its signature every time cost more than deciding the call. A token's
    claims cannot change under its signature, so a remembered answer stays right, except for
    expiry (checked on every call) and revocation (the list is consulted on every call, from a
    copy at most `[tokens] revocation_refresh_seconds` old), and the organisation of a token
    with an organisation number (asked of the directory on every call, from a copy at most
    `[tokens] directory_refresh_seconds` old: a directory change counts at once for every
    token)."""

    def __init__(
        self,
        settings: TokenSettings,
        revocations: RevocationList,
        size: int = 4096,
        clock: Callable[[], float] = time.time,
        directory: OrganisationDirectory | None = None,
    ) -> None:
        self.settings = settings
        self.revocations = revocations
        self.directory = directory or OrganisationDirectory(
            settings.directory_url, settings.directory_refresh
        )
        self._keys: FileKeys | UrlKeys = (
            FileKeys(settings.jwks_file)
            if settings.jwks_file is not None
            else UrlKeys(str(settings.jwks_url))
        )
        self._size = size
        self._clock = clock
        self._seen: OrderedDict[str, _Checked] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: TokenSettings) -> TokenVerifier:
        return cls(settings, RevocationList(settings.revocations_url, settings.revocation_refresh))

    @classmethod
    def from_config(cls) -> TokenVerifier:
        """The verifier every process builds at its composition root (raises ConfigError)."""
        return cls.from_settings(config.token_settings())

    def close(self) -> None:
        self.revocations.close()
        self.directory.close()

    def __call__(self, token: str) -> Actor:
        return self.verify(token).actor

    def verify(self, token: str) -> Verified:
        """The checked token; raises Unauthenticated (or IssuerUnavailable)."""
        with self._lock:
            hit = self._seen.get(token)
            if hit is not None:
                self._seen.move_to_end(token)
        if hit is None:
            hit = self._check(token)
            with self._lock:
                self._seen[token] = hit
                if len(self._seen) > self._size:
                    self._seen.popitem(last=False)
        if hit.expires_at + self.settings.leeway <= self._clock():
            with self._lock:
                self._seen.pop(token, None)
            raise Unauthenticated("token has expired")
        try:
            revoked = self.revocations.is_revoked(hit.jti)
        except Exception as exc:
            raise IssuerUnavailable(f"the revocation list cannot be read ({exc})") from exc
        if revoked:
            raise Unauthenticated("token has been revoked")
        return self._answer(hit)

    def _answer(self, hit: _Checked) -> Verified:
        """The caller of a checked token, the organisation of its number as the directory
        says now."""
        orgnr = hit.claimed.orgnr
        if orgnr is None:
            if hit.answer is None:
                hit.answer = Verified(hit.claimed.actor, hit.jti, hit.expires_at)
            return hit.answer
        entry = _lookup(self.directory, orgnr)
        mapping = hit.mapping
        if mapping is not None and mapping[0] is entry:
            return mapping[1]
        answer = Verified(resolve(hit.claimed, entry), hit.jti, hit.expires_at)
        assert entry is not None  # resolve refuses a number the directory does not hold
        hit.mapping = (entry, answer)
        return answer

    def revoke(self, token: str) -> bool:
        """Put a valid token on the revocation list (every process refuses it within the
        bound); False when the token is not valid anyway."""
        try:
            checked = self.verify(token)
        except Unauthenticated:
            return False
        try:
            self.revocations.revoke(checked.jti, checked.expires_at)
        except Exception as exc:
            raise IssuerUnavailable(f"the revocation list cannot be written ({exc})") from exc
        return True

    def _check(self, token: str) -> _Checked:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(
                f"invalid token: alg {header.get('alg')!r} is not accepted (ES256 or RS256)"
            )
        if header.get("typ", "JWT") not in TOKEN_TYPES:
            raise Unauthenticated(f"invalid token: typ {header.get('typ')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("invalid token: no key id (kid) in its header")
        key = self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway,
                options={
                    "require": ["iss", "aud", "iat", "exp", "jti", "sub"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        # PyJWT has checked both are integers (or integer strings).
        expires_at, issued_at = int(claims["exp"]), int(claims["iat"])
        if expires_at - issued_at > s.max_lifetime:
            raise Unauthenticated(
                f"invalid token: it lives longer than {s.max_lifetime} s (exp - iat)"
            )
        if s.scope and s.scope not in _scopes(claims.get("scope")):
            raise Unauthenticated(f"invalid token: scope {s.scope!r} is missing")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise Unauthenticated("invalid token: jti must be a non-empty string")
        try:
            found = claimed(claims)
        except (IdentifierError, ValueError, KeyError) as exc:
            raise Unauthenticated(f"invalid token claims: {exc}") from exc
        return _Checked(found, claims["jti"], float(expires_at))


def _scopes(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying the token."""
    return (("authorization", f"Bearer {token}"),)


def _directory_orgnr(her_id: str) -> str | None:
    """The organisation number the directory (ACCESS_DATABASE_URL) has for a HER-id; None when
    it has none or cannot be read (the token then names the organisation by HER-id only)."""
    url = config.access_database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # no read model yet (and none is created by asking)
    directory = OrganisationDirectory(url)
    try:
        return directory.orgnr_of(her_id)
    except Exception:
        return None
    finally:
        directory.close()


def main(argv: list[str] | None = None) -> None:
    from shared.bootstrap import test_data_policy
    from shared.issuer import dev_issuer

    parser = argparse.ArgumentParser(
        description="Mint a token from carepath's local development issuer (var/dev-issuer). "
        "An organisation's token carries its organisation number from the directory, as "
        "HelseID's do, besides the carepath HER-id and kind claims; --orgnr alone mints one "
        "shaped as HelseID issues it (the organisation named by its number only)."
    )
    parser.add_argument("--her-id", help="HER-id of the caller's organisation")
    parser.add_argument("--kind", choices=[k.value for k in OrgKind])
    parser.add_argument("--orgnr", help="organisation number only (the directory maps it)")
    parser.add_argument("--hpr", help="HPR-number of the health professional")
    parser.add_argument("--pid", help="CITIZEN: the person's own fødselsnummer or D-number")
    parser.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (≤ 3600)")
    args = parser.parse_args(argv)
    cap = int(rules()["tokens"]["max_lifetime_seconds"])
    if not 0 < args.ttl <= cap:
        parser.error(f"--ttl must be 1..{cap} seconds (the services refuse longer tokens)")
    claims: dict[str, Any] = {}
    hpr = HprNumber.parse(args.hpr).value if args.hpr else None
    if args.orgnr:
        if args.her_id or args.kind or args.pid:
            parser.error("--orgnr names the organisation alone (no --her-id, --kind or --pid)")
        try:
            orgnr = str(stdnum_orgnr.validate(args.orgnr))
        except Exception:
            parser.error("--orgnr is not an organisation number")
        actor = Actor("", OrgKind.MUNICIPALITY, hpr, frozenset(args.role), orgnr=orgnr)
        claims = {HER_ID_CLAIM: None, ORG_KIND_CLAIM: None, "sub": hpr or orgnr}
    elif args.kind == OrgKind.CITIZEN:
        if not args.pid:
            parser.error("--kind CITIZEN needs --pid")
        try:
            test_data_policy()  # a synthetic --pid only where test data is allowed
        except ConfigError as exc:
            sys.exit(f"carepath: {exc}")
        try:
            actor = Actor.citizen(args.pid)
        except IdentifierError as exc:
            parser.error(f"--pid {exc}")
    else:
        if not args.her_id or not args.kind:
            parser.error("give --her-id and --kind (or --orgnr, or --kind CITIZEN --pid)")
        her_id = HerId.parse(args.her_id).value
        actor = Actor(
            her_id=her_id,
            org_kind=OrgKind(args.kind),
            hpr=hpr,
            roles=frozenset(args.role),
            orgnr=_directory_orgnr(her_id),
        )
    try:
        issuer = dev_issuer()
    except ConfigError as exc:
        sys.exit(f"carepath: {exc}")
    print(issuer.mint(actor, args.ttl, **claims))


if __name__ == "__main__":
    main()
