"""TLS settings from the environment: unset is plaintext (`make run` on loopback); set, they
are complete and name files that exist, or the process refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import config
from shared.config import ClientTLS, ConfigError, ServerTLS

TLS_VARIABLES = (
    "GRPC_TLS_CERT_FILE",
    "GRPC_TLS_KEY_FILE",
    "GRPC_TLS_CLIENT_CA_FILE",
    "GRPC_TLS_CA_FILE",
    "GRPC_TLS_CLIENT_CERT_FILE",
    "GRPC_TLS_CLIENT_KEY_FILE",
    "AMQP_TLS_CA_FILE",
    "AMQP_TLS_CERT_FILE",
    "AMQP_TLS_KEY_FILE",
)


@pytest.fixture(autouse=True)
def no_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TLS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "file.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_nothing_configured_is_plaintext() -> None:
    assert config.grpc_server_tls() is None
    assert config.grpc_client_tls() is None
    assert config.amqp_tls("amqp://guest:guest@127.0.0.1:5672/%2F") is None
    assert config.nameko_amqp_ssl("amqp://guest:guest@127.0.0.1:5672/%2F") is None


def test_a_server_with_a_client_ca_requires_client_certificates(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    for name in ("GRPC_TLS_CERT_FILE", "GRPC_TLS_KEY_FILE", "GRPC_TLS_CLIENT_CA_FILE"):
        monkeypatch.setenv(name, str(pem))
    assert config.grpc_server_tls() == ServerTLS(cert=pem, key=pem, client_ca=pem)


def test_a_client_trusts_the_configured_ca(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    monkeypatch.setenv("GRPC_TLS_CA_FILE", str(pem))
    assert config.grpc_client_tls() == ClientTLS(ca=pem)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (["GRPC_TLS_CERT_FILE"], "GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together"),
        (["GRPC_TLS_CLIENT_CA_FILE"], "GRPC_TLS_CLIENT_CA_FILE needs GRPC_TLS_CERT_FILE"),
    ],
)
def test_half_a_server_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path, variables: list[str], message: str
) -> None:
    for name in variables:
        monkeypatch.setenv(name, str(pem))
    with pytest.raises(ConfigError, match=message):
        config.grpc_server_tls()


def test_a_client_certificate_without_a_ca_is_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    monkeypatch.setenv("GRPC_TLS_CLIENT_CERT_FILE", str(pem))
    monkeypatch.setenv("GRPC_TLS_CLIENT_KEY_FILE", str(pem))
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CERT_FILE needs"):
        config.grpc_client_tls()


def test_a_file_that_does_not_exist_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_TLS_CA_FILE", "/nowhere/ca.pem")
    with pytest.raises(ConfigError, match="GRPC_TLS_CA_FILE: no such file"):
        config.grpc_client_tls()


def test_broker_tls_files_with_a_plain_amqp_uri_are_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    monkeypatch.setenv("AMQP_TLS_CA_FILE", str(pem))
    with pytest.raises(ConfigError, match="AMQP_URI is not amqps://"):
        config.amqp_tls("amqp://guest:guest@rabbitmq:5672/%2F")


def test_nameko_gets_the_same_broker_tls(monkeypatch: pytest.MonkeyPatch, pem: Path) -> None:
    monkeypatch.setenv("AMQP_TLS_CA_FILE", str(pem))
    uri = "amqps://carepath:secret@rabbitmq.example:5671/%2F"
    assert config.amqp_tls(uri) == ClientTLS(ca=pem)
    assert config.nameko_amqp_ssl(uri) == {
        "ca_certs": str(pem),
        "server_hostname": "rabbitmq.example",
    }
