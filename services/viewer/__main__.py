"""`python -m services.viewer`: serve the pathway viewer (default http://127.0.0.1:8080): the
coordinators' pages and the citizen's own page (/innbygger).

Settings: VIEWER_HTTP_ADDRESS (host:port), PATHWAY_GRPC_ADDRESS, REGISTRY_GRPC_ADDRESS (the
AccessService with the citizen's access list), the token issuer as every service has it
(CAREPATH_TOKEN_ISSUER, CAREPATH_TOKEN_AUDIENCE, CAREPATH_JWKS_FILE or CAREPATH_JWKS_URL,
REVOCATIONS_DATABASE_URL: logout revokes), VIEWER_DEV_SIGN_IN (1: the development sign-ins
that mint tokens, for coordinators and citizens, from the development issuer: only with
CAREPATH_DEV_ISSUER=1; default 1), VIEWER_SECURE_COOKIES (1 behind HTTPS).
"""

from __future__ import annotations

import logging
import os

import uvicorn

from services.viewer.app import create_app
from services.viewer.web import Settings
from shared import config
from shared.issuer import dev_issuer
from shared.process import setup_logging, token_verifier

log = logging.getLogger("services.viewer")


def main() -> None:
    setup_logging("viewer")
    host, _, port = config.http_address("viewer").rpartition(":")
    settings = Settings(
        pathway_address=config.grpc_address("pathway"),
        registry_address=config.grpc_address("registry"),
        tokens=token_verifier(),
        dev_sign_in=os.environ.get("VIEWER_DEV_SIGN_IN", "1") == "1",
        issuer=dev_issuer() if config.dev_issuer_enabled() else None,
        secure_cookies=os.environ.get("VIEWER_SECURE_COOKIES", "0") == "1",
    )
    log.info(
        "pathway viewer on http://%s:%s (pathway service %s, registry %s)",
        host,
        port,
        settings.pathway_address,
        settings.registry_address,
    )
    # No access log: the paths carry patient identifiers, which are never logged at INFO.
    # Open event streams are cut after 5 s on shutdown (the browsers reconnect to the next one).
    uvicorn.run(
        create_app(settings),
        host=host,
        port=int(port),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
