"""The one way a carepath process opens a gRPC channel to a carepath service: plaintext when
no TLS is configured (`make run` on loopback), else TLS verified against the configured CA
bundle, with the client's certificate when the servers require one (mTLS).

Settings (`shared.config.grpc_client_tls`): GRPC_TLS_CA_FILE, GRPC_TLS_CLIENT_CERT_FILE,
GRPC_TLS_CLIENT_KEY_FILE. The server's certificate must name the host of the address dialled
(a DNS name or IP address in its subjectAltName).
"""

from __future__ import annotations

import grpc

from shared import config, tracing
from shared.config import ClientTLS


def credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes() if tls.ca else None,
        private_key=tls.key.read_bytes() if tls.key else None,
        certificate_chain=tls.cert.read_bytes() if tls.cert else None,
    )


def channel(address: str, tls: ClientTLS | None = None) -> grpc.Channel:
    """A channel to `address` ("host:port"); `tls` None: as configured in the environment.
    Every call carries the caller's trace context (`traceparent` metadata)."""
    tls = tls or config.grpc_client_tls()
    if tls is None:
        plain = grpc.insecure_channel(address)
    else:
        plain = grpc.secure_channel(address, credentials(tls))
    return grpc.intercept_channel(plain, tracing.ClientInterceptor())


def aio_channel(address: str, tls: ClientTLS | None = None) -> grpc.aio.Channel:
    """The asyncio channel for the same (the viewer's)."""
    tls = tls or config.grpc_client_tls()
    if tls is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, credentials(tls))
