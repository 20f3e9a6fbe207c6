"""`python -m services.viewer`: serve the pathway viewer (default http://127.0.0.1:8080): the
coordinators' pages and the citizen's own page (/innbygger).

Settings:
- VIEWER_HTTP_ADDRESS (host:port), PATHWAY_GRPC_ADDRESS, REGISTRY_GRPC_ADDRESS (the organisation
  directory, and the AccessService with the citizen's access list);
- the token issuer as every service has it (CAREPATH_TOKEN_ISSUER, CAREPATH_TOKEN_AUDIENCE,
  CAREPATH_JWKS_FILE or CAREPATH_JWKS_URL, REVOCATIONS_DATABASE_URL: logout revokes);
- VIEWER_DEV_SIGN_IN: 1 turns on the development sign-ins that mint tokens from the
  development issuer (only with CAREPATH_DEV_ISSUER=1; a municipality of the directory, for
  coordinators; a fødselsnummer, for citizens). Off unless set; `make run`
  sets it (infra/Procfile), the image and docker-compose.yml leave it off;
- VIEWER_IDLE_TIMEOUT_SECONDS (default 900: 15 minutes without a request by the user signs
  them out), VIEWER_MAX_SESSION_SECONDS (default 28800, never longer than the token);
- VIEWER_TRUSTED_PROXIES: comma-separated addresses of the reverse proxies whose
  X-Forwarded-Proto (and -For) is believed (uvicorn's forwarded_allow_ips); unset: none. A
  request is "over TLS" when its scheme, so corrected, is https: then cookies are Secure and
  Strict-Transport-Security is sent;
- VIEWER_SECURE_COOKIES: 1 makes cookies Secure even on requests that arrive as plain HTTP;
- VIEWER_PUBLIC_ORIGIN: the origin browsers use (`https://viewer.example.no`), which every
  POST's Origin must name; unset: the request's own scheme and Host.
"""

from __future__ import annotations

import logging
import os

import uvicorn

from services.viewer.app import create_app
from services.viewer.session import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_SECONDS
from services.viewer.web import Settings
from shared import config, ops
from shared.issuer import dev_issuer
from shared.process import start_process, token_verifier

log = logging.getLogger("services.viewer")


def seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    if not text:
        return default
    value = float(text)
    if value <= 0:
        raise SystemExit(f"{name} must be a positive number of seconds, not {text!r}")
    return value


def main() -> None:
    start_process("viewer")
    host, _, port = config.http_address("viewer").rpartition(":")
    settings = Settings(
        pathway_address=config.grpc_address("pathway"),
        registry_address=config.grpc_address("registry"),
        tokens=token_verifier(),
        dev_sign_in=os.environ.get("VIEWER_DEV_SIGN_IN", "0") == "1",
        issuer=dev_issuer() if config.dev_issuer_enabled() else None,
        secure_cookies=os.environ.get("VIEWER_SECURE_COOKIES", "0") == "1",
        idle_timeout_seconds=seconds("VIEWER_IDLE_TIMEOUT_SECONDS", DEFAULT_IDLE_SECONDS),
        max_session_seconds=seconds("VIEWER_MAX_SESSION_SECONDS", DEFAULT_MAX_SECONDS),
        public_origin=os.environ.get("VIEWER_PUBLIC_ORIGIN") or None,
    )
    proxies = os.environ.get("VIEWER_TRUSTED_PROXIES", "").strip()
    # Ready while the services it shows answer SERVING; OPS_PORT serves /metrics and health.
    ops.OPS.check("pathway", ops.grpc_service(settings.pathway_address))
    ops.OPS.check("registry", ops.grpc_service(settings.registry_address))
    ops.OPS.start("viewer")
    log.info(
        "pathway viewer on http://%s:%s (pathway service %s, registry %s; development "
        "sign-in %s, idle timeout %.0f s)",
        host,
        port,
        settings.pathway_address,
        settings.registry_address,
        "ON" if settings.dev_sign_in else "off",
        settings.idle_timeout_seconds,
    )
    # No access log: the log says who signed in, never which pages they read (the audit log
    # of the services has every read). Open event streams are cut after 5 s on shutdown (the
    # browsers reconnect to the next one).
    uvicorn.run(
        create_app(settings),
        host=host,
        port=int(port),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


if __name__ == "__main__":
    main()
