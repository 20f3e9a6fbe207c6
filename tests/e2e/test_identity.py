"""Identity at the real servers: a revoked token stops working at every server within the
revocation bound, no gRPC service (nor the viewer) starts without a configured issuer or
with a key it must not trust, and a production process refuses a synthetic patient number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    pathway_pb2,
    pathway_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.admissions.application import AdmissionsApplication
from shared import rules, sql
from shared.auth import bearer_metadata
from shared.ids import FNR_SYSTEM
from tests.conftest import HOSPITAL, MUNICIPALITY
from tests.processes import launched, service_command
from tests.support import (
    ISSUER,
    ROOT,
    TOKEN_ENV,
    Harness,
    auth,
    events_in,
    free_port,
    make_fnr,
    meta,
    token_verifier,
    wait_for,
)

BOUND = float(rules.rules()["tokens"]["revocation_refresh_seconds"])


def calls(system: Harness, token: str) -> dict[str, grpc.StatusCode]:
    """The status of one call at the registry and one at PathwayService with `token`."""
    metadata = bearer_metadata(token)
    registry = registry_pb2_grpc.RegistryServiceStub(system.channel(system.servers["registry"]))
    pathway = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
    answers: dict[str, grpc.StatusCode] = {}
    for name, call in (
        (
            "registry",
            lambda: registry.ListOrganisations(
                registry_pb2.ListOrganisationsRequest(her_ids=["4201"]), metadata=metadata
            ),
        ),
        (
            "pathway",
            lambda: pathway.ListPathways(
                pathway_pb2.ListPathwaysRequest(
                    municipality_her_id=MUNICIPALITY.her_id,
                    purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
                ),
                metadata=metadata,
            ),
        ),
    ):
        try:
            call()
            answers[name] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            answers[name] = exc.code()
    return answers


def test_a_token_revoked_at_logout_is_refused_by_every_server_within_the_bound(
    system: Harness, backend: dict[str, str]
) -> None:
    token = ISSUER.mint(MUNICIPALITY)
    ok = grpc.StatusCode.OK
    assert calls(system, token) == {"registry": ok, "pathway": ok}  # now remembered by both

    viewer = token_verifier(backend["revocations"])  # the viewer's own process, logging out
    assert viewer.revoke(token)
    revoked_at = time.monotonic()
    refused = {
        "registry": grpc.StatusCode.UNAUTHENTICATED,
        "pathway": grpc.StatusCode.UNAUTHENTICATED,
    }
    wait_for(lambda: calls(system, token) == refused, timeout=10, what="the revoked token refused")
    assert time.monotonic() - revoked_at <= BOUND + 1.0  # the bound, and a call's time
    viewer.close()

    assert calls(system, ISSUER.mint(MUNICIPALITY)) == {"registry": ok, "pathway": ok}


def test_while_the_revocation_list_cannot_be_read_calls_are_unavailable_not_let_through(
    system: Harness, backend: dict[str, str]
) -> None:
    token = ISSUER.mint(MUNICIPALITY)
    ok, unavailable = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
    assert calls(system, token) == {"registry": ok, "pathway": ok}
    engine = sql.engine(backend["revocations"])
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE revoked_tokens RENAME TO revoked_tokens_away"))
    try:
        wait_for(
            lambda: calls(system, token) == {"registry": unavailable, "pathway": unavailable},
            timeout=30,  # each UNAVAILABLE call is retried by the channel's policy first
            what="calls answered UNAVAILABLE without the revocation list",
        )
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE revoked_tokens_away RENAME TO revoked_tokens"))
        engine.dispose()
    wait_for(
        lambda: calls(system, token) == {"registry": ok, "pathway": ok},
        timeout=10,
        what="calls answered again once the list is back",
    )


SERVERS = [
    ["-m", "services.referrals", "serve"],
    ["-m", "services.admissions", "serve"],
    ["-m", "services.discharges", "serve"],
    ["-m", "services.medications", "serve"],
    ["-m", "services.registry", "serve"],
    ["-m", "services.pathway", "serve"],
    ["-m", "services.viewer"],
]


def start(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Start a process with no issuer but `env`, on stores of its own; it must exit."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAREPATH_")}
    return subprocess.run(
        [sys.executable, *command],
        env={
            **clean,
            "CAREPATH_VAR_DIR": str(tmp_path / "var"),
            "REVOCATIONS_DATABASE_URL": f"sqlite:///{tmp_path}/revocations.sqlite",
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", SERVERS, ids=lambda c: c[1].split(".")[1])
def test_no_service_starts_without_a_configured_issuer(command: list[str], tmp_path: Path):
    done = start(command, tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("carepath: no token issuer configured")
    assert "CAREPATH_TOKEN_ISSUER" in last


@pytest.mark.parametrize("command", SERVERS[3:4] + SERVERS[-1:], ids=["medications", "viewer"])
def test_no_service_starts_with_a_symmetric_key_as_its_issuers_key(
    command: list[str], tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "kid": "x", "k": "Y2hhbmdlLW1l"}]}))
    done = start(command, tmp_path, **{**TOKEN_ENV, "CAREPATH_JWKS_FILE": str(jwks)})
    assert done.returncode != 0
    assert "symmetric (oct)" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("test_data", ["", "allow"], ids=["production", "test data allowed"])
def test_a_production_process_refuses_a_synthetic_patient_naming_the_field(
    tmp_path: Path, test_data: str
) -> None:
    """The admissions server as production starts it (no CAREPATH_TEST_DATA, as in
    docker-compose.yml) refuses a synthetic fødselsnummer as INVALID_ARGUMENT on
    `patient.value` and stores nothing; the same server where test data is allowed (`make run`,
    the tests) admits the patient."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CAREPATH_") and not k.endswith("_DATABASE_URL")
    }
    address = f"127.0.0.1:{free_port()}"
    env = {
        **clean,
        **TOKEN_ENV,
        "CAREPATH_VAR_DIR": str(tmp_path / "var"),  # every store a SQLite file of its own there
        "ADMISSIONS_GRPC_ADDRESS": address,
        **({"CAREPATH_TEST_DATA": test_data} if test_data else {}),
    }
    patient = make_fnr(17, 5, 41, 230)  # synthetic: month + 80
    assert patient[2:4] == "85"
    request = admissions_pb2.AdmitPatientRequest(
        metadata=meta(hours=-1),
        patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=patient),
        ward="Medisinsk sengepost 3",
        admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
        municipality_her_id=MUNICIPALITY.her_id,
    )
    with launched([service_command("admissions", "serve")], env, tmp_path) as (server,):
        wait_for(server.ready, 60, "the admissions server to come up")
        with grpc.insecure_channel(address) as channel:
            stub = admissions_pb2_grpc.AdmissionServiceStub(channel)
            if test_data:
                stay = stub.AdmitPatient(request, metadata=auth(HOSPITAL), timeout=30)
                assert stay.patient.value == patient
                assert "synthetic test identifiers are accepted" in server.log()
                return
            with pytest.raises(grpc.RpcError) as refused:
                stub.AdmitPatient(request, metadata=auth(HOSPITAL), timeout=30)
        assert "synthetic test identifiers are accepted" not in server.log()
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason = "is a synthetic test number (month + 80), which this system does not accept"
    assert error.details() == f"patient.value: {reason}"
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in status.details)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("patient.value", reason)
    ]
    assert patient not in server.log()
    app = AdmissionsApplication.from_url(f"sqlite:///{tmp_path / 'var' / 'admissions.sqlite'}")
    try:
        assert events_in(app) == 0  # the refused command stored nothing
    finally:
        app.close()
