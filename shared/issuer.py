"""An access-token issuer holding an ES256 private key: the local development issuer of
`make run` (and `make token`), and the tests' issuer. In production tokens come from HelseID
(ID-porten via Helsenorge for citizens); carepath holds no private key there.

The development issuer lives in var/dev-issuer/ (0700): `signing-key.pem` (0600, the private
key) and `jwks.json` (its public key, which the services trust through CAREPATH_JWKS_FILE or,
with CAREPATH_DEV_ISSUER=1, by default). It is created on first use and reused afterwards;
processes starting together agree on one key (the first to link its file wins).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared import config
from shared.config import ConfigError

DEV_ISSUER = "carepath-dev-issuer"
DEV_AUDIENCE = "carepath"
DEV_SCOPE = "carepath/api"
DEV_CLIENT_ID = "carepath-dev"


@dataclass(frozen=True)
class Issuer:
    """Signs access tokens as HelseID shapes them (shared/auth.py names the claims)."""

    key: ec.EllipticCurvePrivateKey
    iss: str
    aud: str
    scope: str = DEV_SCOPE
    client_id: str = DEV_CLIENT_ID
    jwks_path: Path = Path("jwks.json")

    @classmethod
    def generate(cls, iss: str, aud: str, **kwargs: Any) -> Issuer:
        return cls(ec.generate_private_key(ec.SECP256R1()), iss, aud, **kwargs)

    @property
    def kid(self) -> str:
        """The key's RFC 7638 thumbprint: the same key always has the same id."""
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        digest = hashes.Hash(hashes.SHA256())
        digest.update(canonical.encode())
        return jwt.utils.base64url_encode(digest.finalize()).decode()

    def jwks(self) -> dict[str, Any]:
        """The public key set the verifiers trust."""
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def write_jwks(self, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.jwks(), indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    def mint(self, actor: Any, ttl_seconds: int = 3600, **claims: Any) -> str:
        """A signed access token for `actor` (a shared.actors.Actor), valid `ttl_seconds`;
        `claims` are added or override (tests shape bad tokens with them)."""
        from shared.auth import actor_claims

        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.iss,
            "aud": self.aud,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "client_id": self.client_id,
            "scope": self.scope,
            **actor_claims(actor),
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, self.key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"}
        )


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)  # the first process to link wins; the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others: chmod 600 it (or delete it)")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} is not an EC private key")
    return loaded


def open_issuer(home: Path, iss: str = DEV_ISSUER, aud: str = DEV_AUDIENCE) -> Issuer:
    """The issuer kept in `home` (0700): its key (created on first use, 0600) and its JWKS
    file (written when missing or stale)."""
    config.private_dir(home)
    key = _load_or_create_key(home / "signing-key.pem")
    issuer = Issuer(key, iss, aud, jwks_path=home / "jwks.json")
    current = issuer.jwks()
    try:
        stale = json.loads(issuer.jwks_path.read_text()) != current
    except (OSError, ValueError):
        stale = True
    if stale:
        issuer.write_jwks(issuer.jwks_path)
    return issuer


def dev_issuer() -> Issuer:
    """The local development issuer (var/dev-issuer), created on first use; only with
    CAREPATH_DEV_ISSUER=1, so no deployment trusts or mints from it by accident."""
    if not config.dev_issuer_enabled():
        raise ConfigError(
            "the development issuer is off: set CAREPATH_DEV_ISSUER=1 (as `make run` and "
            "`make token` do); production tokens come from HelseID"
        )
    return open_issuer(config.var_dir() / "dev-issuer")


def main() -> None:
    """`python -m shared.issuer`: create (or find) the development issuer, say where it is."""
    try:
        issuer = dev_issuer()
    except ConfigError as exc:
        raise SystemExit(f"carepath: {exc}") from None
    print(f"development issuer {issuer.iss!r} (key {issuer.kid}): {issuer.jwks_path}")


if __name__ == "__main__":
    main()
