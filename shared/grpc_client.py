"""The one way a carepath process opens a gRPC channel to a carepath service: plaintext when
no TLS is configured (`make run` on loopback), else TLS verified against the configured CA
bundle, with the client's certificate when the servers require one (mTLS).

Settings (`shared.config.grpc_client_tls`): GRPC_TLS_CA_FILE, GRPC_TLS_CLIENT_CERT_FILE,
GRPC_TLS_CLIENT_KEY_FILE. The server's certificate must name the host of the address dialled
(a DNS name or IP address in its subjectAltName).

Every channel carries SERVICE_CONFIG: gRPC itself retries a call answered UNAVAILABLE (a
store unreachable or locked, a server restarting, a fact not here yet) or ABORTED (a concurrent
change won) with exponential backoff and jitter, sending the same request again — so a command
keeps its command id and is applied once (the services answer a repeated command id with its
first result). The other codes are final: the same request would fail again. Retry
throttling keeps a failing server from being hammered (gRFC A6: a channel holds 20 tokens, a
retryable failure takes 1, a success gives back 0.2, and below 10 it stops retrying until
calls succeed again).
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from shared import config, tracing
from shared.config import ClientTLS


def credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes() if tls.ca else None,
        private_key=tls.key.read_bytes() if tls.key else None,
        certificate_chain=tls.cert.read_bytes() if tls.cert else None,
    )


#: The status codes a client retries (docs/errors.md): transient, and safe to repeat because
#: reads change nothing and commands are idempotent on their command id.
RETRYABLE = ("UNAVAILABLE", "ABORTED")

#: gRPC service config (gRFC A6) for every carepath service: up to 5 attempts, waiting a
#: random time up to 0.2 s, 0.4 s, 0.8 s, 1.6 s between them (about 3 s at most in all, within
#: the call's deadline).
SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{}],  # every method of every service on the channel
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": list(RETRYABLE),
            },
        }
    ],
    "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.2},
}

#: The channel options that apply SERVICE_CONFIG (sync and asyncio channels alike).
OPTIONS: list[tuple[str, Any]] = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
]


def channel(address: str, tls: ClientTLS | None = None) -> grpc.Channel:
    """A channel to `address` ("host:port"); `tls` None: as configured in the environment.
    Every call carries the caller's trace context (`traceparent` metadata)."""
    tls = tls or config.grpc_client_tls()
    if tls is None:
        plain = grpc.insecure_channel(address, OPTIONS)
    else:
        plain = grpc.secure_channel(address, credentials(tls), OPTIONS)
    return grpc.intercept_channel(plain, tracing.ClientInterceptor())


def aio_channel(address: str, tls: ClientTLS | None = None) -> grpc.aio.Channel:
    """The asyncio channel for the same (the viewer's)."""
    tls = tls or config.grpc_client_tls()
    if tls is None:
        return grpc.aio.insecure_channel(address, OPTIONS)
    return grpc.aio.secure_channel(address, credentials(tls), OPTIONS)
