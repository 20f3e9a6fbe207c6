"""HelseID's tokens name the caller's organisation by organisation number only. On the real
servers, store, broker and read model: the registry's directory gives organisations their
numbers; a token with nothing but `orgnr_child`/`orgnr_parent` and the HPR-number (no carepath
organisation claims), signed by an issuer the servers know by its JWKS, is decided by the
access policy as the organisation the directory maps the number to, and the audit log records
the number in a chain that still verifies. A number the directory does not hold, and a carepath
HER-id claim that disagrees with the directory, are refused; the development issuer's tokens
carry the directory's number too."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from typing import Any

import grpc
import jwt
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stdnum.no import orgnr as stdnum_orgnr

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc, registry_pb2, registry_pb2_grpc
from shared.access.model import organisations
from shared.actors import Actor, OrgKind
from shared.audit import log as audit
from shared.auth import (
    HER_ID_CLAIM,
    HPR_CLAIM,
    ORG_KIND_CLAIM,
    ORGNR_CHILD_CLAIM,
    ORGNR_PARENT_CLAIM,
    bearer_metadata,
)
from tests.support import (
    ISSUER,
    ISSUER_HOME,
    REGISTER_ADAPTER,
    ROOT,
    Harness,
    auth,
    events_in,
    wait_for,
)

HPR = "1203921"


def new_orgnr() -> str:
    """A synthetic organisation number with a valid check digit, fresh for this test."""
    while True:
        base = f"{random.randint(80_000_000, 99_999_999)}"
        for digit in "0123456789":
            if stdnum_orgnr.is_valid(base + digit):
                return base + digit


def new_her_id() -> str:
    return str(random.randint(1_000_000, 9_999_999))


def helseid_token(hpr: str | None = HPR, **claims: Any) -> str:
    """As HelseID issues it: organisation numbers and HPR-number, no carepath organisation
    claims (the test issuer signs; the servers know its key from its JWKS file)."""
    no_carepath = {HER_ID_CLAIM: None, ORG_KIND_CLAIM: None, "sub": hpr or "client"}
    return ISSUER.mint(Actor("", OrgKind.GP, hpr), **no_carepath, **claims)


def register(
    system: Harness,
    her_id: str,
    kind: int,
    orgnr: str,
    parent: str = "",
    metadata: tuple[tuple[str, str], ...] | None = None,
) -> registry_pb2.OrganisationEntry:
    stub = registry_pb2_grpc.RegistryServiceStub(system.channel(system.servers["registry"]))
    meta = common_pb2.CommandMetadata(
        command_id=uuid.uuid4().hex, occurred_at=Timestamp(seconds=int(time.time()))
    )
    request = registry_pb2.RegisterOrganisationRequest(
        metadata=meta, her_id=her_id, kind=kind, name=f"Org {her_id}", parent_her_id=parent,
        orgnr=orgnr,
    )  # fmt: skip
    return stub.RegisterOrganisation(request, metadata=metadata or auth(REGISTER_ADAPTER))


def in_directory(system: Harness, her_id: str, orgnr: str) -> None:
    """Wait until the projector has folded the entry into the read model's directory."""
    o = organisations
    query = sa.select(o.c.her_id).where(o.c.her_id == her_id, o.c.orgnr == orgnr)

    def folded() -> bool:
        with system.engine.connect() as conn:
            return conn.execute(query).first() is not None

    wait_for(folded, what=f"{her_id}'s organisation number in the directory")


def list_pathways(system: Harness, municipality: str, token: str) -> tuple[grpc.StatusCode, str]:
    """ListPathways of a municipality with `token`: the status and the call's request id."""
    stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
    request_id = f"helseid-{uuid.uuid4().hex[:12]}"
    try:
        stub.ListPathways(
            pathway_pb2.ListPathwaysRequest(
                municipality_her_id=municipality,
                purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
            ),
            metadata=(*bearer_metadata(token), ("x-request-id", request_id)),
        )
        return grpc.StatusCode.OK, request_id
    except grpc.RpcError as exc:
        return exc.code(), request_id


def audit_row(system: Harness, request_id: str) -> Any:
    log = audit.audit_log
    with system.audit_engine.connect() as conn:
        return conn.execute(sa.select(log).where(log.c.request_id == request_id)).one()


@pytest.fixture
def municipality(system: Harness) -> tuple[str, str]:
    """A municipality of the directory with its organisation number (HER-id, orgnr)."""
    her_id, orgnr = new_her_id(), new_orgnr()
    entry = register(system, her_id, common_pb2.ORGANISATION_KIND_MUNICIPALITY, orgnr)
    assert (entry.her_id, entry.orgnr) == (her_id, orgnr)
    in_directory(system, her_id, orgnr)
    return her_id, orgnr


def test_a_helseid_token_is_decided_as_the_organisation_its_number_maps_to(
    system: Harness, municipality: tuple[str, str], backend: dict[str, str]
) -> None:
    her_id, orgnr = municipality
    token = helseid_token(**{ORGNR_CHILD_CLAIM: orgnr, ORGNR_PARENT_CLAIM: new_orgnr()})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert HER_ID_CLAIM not in claims and ORG_KIND_CLAIM not in claims
    assert claims[HPR_CLAIM] == HPR
    # Its own list: the policy admits the municipality the number maps to ...
    status, request_id = list_pathways(system, her_id, token)
    assert status is grpc.StatusCode.OK
    row = audit_row(system, request_id)
    assert (row.actor_her_id, row.actor_kind, row.actor_hpr, row.actor_orgnr, row.outcome) == (
        her_id,
        "MUNICIPALITY",
        HPR,
        orgnr,
        "OK",
    )
    # ... and refuses it another municipality's list (decided, and audited, as the mapping).
    status, refused_id = list_pathways(system, new_her_id(), token)
    assert status is grpc.StatusCode.PERMISSION_DENIED
    refused = audit_row(system, refused_id)
    assert (refused.actor_her_id, refused.actor_orgnr, refused.outcome) == (
        her_id,
        orgnr,
        "PERMISSION_DENIED",
    )
    # The whole log, this call's rows with their organisation numbers included, verifies.
    assert audit.verify(system.audit_engine) == []
    result = subprocess.run(
        [sys.executable, "-m", "services.audit", "verify"],
        env={**os.environ, "AUDIT_DATABASE_URL": backend["audit"], "LOG_LEVEL": "WARNING"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "audit log: intact" in result.stdout, result.stdout


def test_a_hospitals_number_is_a_hospital_to_the_policy(
    system: Harness, municipality: tuple[str, str]
) -> None:
    hospital, orgnr = new_her_id(), new_orgnr()
    register(system, hospital, common_pb2.ORGANISATION_KIND_HOSPITAL, orgnr)
    in_directory(system, hospital, orgnr)
    token = helseid_token(**{ORGNR_PARENT_CLAIM: orgnr})
    status, request_id = list_pathways(system, municipality[0], token)
    assert status is grpc.StatusCode.PERMISSION_DENIED
    row = audit_row(system, request_id)
    assert (row.actor_her_id, row.actor_kind, row.actor_orgnr) == (hospital, "HOSPITAL", orgnr)


def test_a_number_the_directory_does_not_hold_is_unauthenticated(
    system: Harness, municipality: tuple[str, str]
) -> None:
    token = helseid_token(**{ORGNR_CHILD_CLAIM: new_orgnr()})
    status, request_id = list_pathways(system, municipality[0], token)
    assert status is grpc.StatusCode.UNAUTHENTICATED
    log = audit.audit_log
    with system.audit_engine.connect() as conn:  # nobody to put on record
        assert conn.execute(sa.select(log).where(log.c.request_id == request_id)).first() is None


def test_a_carepath_claim_that_disagrees_with_the_directory_is_unauthenticated(
    system: Harness, municipality: tuple[str, str]
) -> None:
    her_id, orgnr = municipality
    other = new_her_id()
    lying = ISSUER.mint(Actor(other, OrgKind.MUNICIPALITY, HPR), **{ORGNR_CHILD_CLAIM: orgnr})
    assert list_pathways(system, other, lying)[0] is grpc.StatusCode.UNAUTHENTICATED
    assert list_pathways(system, her_id, lying)[0] is grpc.StatusCode.UNAUTHENTICATED
    agreeing = ISSUER.mint(Actor(her_id, OrgKind.MUNICIPALITY, HPR), **{ORGNR_CHILD_CLAIM: orgnr})
    assert list_pathways(system, her_id, agreeing)[0] is grpc.StatusCode.OK


def test_an_organisation_number_stays_with_one_organisation(
    system: Harness, municipality: tuple[str, str]
) -> None:
    her_id, orgnr = municipality
    with pytest.raises(grpc.RpcError) as taken:
        register(system, new_her_id(), common_pb2.ORGANISATION_KIND_GP, orgnr)
    assert taken.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert taken.value.details().startswith(f"orgnr: {orgnr} belongs to another organisation")
    info = error_info(taken.value)
    assert (info.reason, dict(info.metadata)) == ("ALREADY_EXISTS", {"field": "orgnr"})
    with pytest.raises(grpc.RpcError) as malformed:
        register(system, new_her_id(), common_pb2.ORGANISATION_KIND_GP, orgnr[:-1] + "x")
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert malformed.value.details().startswith("orgnr:")
    # The holder gives its number up (a new one); then another organisation may take it.
    renumbered = new_orgnr()
    register(system, her_id, common_pb2.ORGANISATION_KIND_MUNICIPALITY, renumbered)
    gp = new_her_id()
    assert register(system, gp, common_pb2.ORGANISATION_KIND_GP, orgnr).orgnr == orgnr
    in_directory(system, gp, orgnr)
    in_directory(system, her_id, renumbered)


def test_only_the_register_keeper_gives_out_numbers(
    system: Harness, municipality: tuple[str, str]
) -> None:
    """As an unrelated caller would try it: the municipality itself (its HelseID token), a
    hospital and a GP each try to take the municipality's number, to renumber the
    municipality, and to probe a free and a malformed number. Every attempt is
    PERMISSION_DENIED with the same details (no telling a held number from a free one),
    audited as refused, and the directory is unchanged."""
    her_id, orgnr = municipality
    callers = {
        "the municipality, by its number": bearer_metadata(
            helseid_token(**{ORGNR_CHILD_CLAIM: orgnr})
        ),
        "a hospital": auth(Actor(new_her_id(), OrgKind.HOSPITAL, "9144900")),
        "a GP": auth(Actor(new_her_id(), OrgKind.GP, "9144901")),
    }
    attempts = {
        "take the held number": (new_her_id(), common_pb2.ORGANISATION_KIND_HOSPITAL, orgnr),
        "renumber the holder": (her_id, common_pb2.ORGANISATION_KIND_MUNICIPALITY, new_orgnr()),
        "a free number": (new_her_id(), common_pb2.ORGANISATION_KIND_GP, new_orgnr()),
        "a malformed number": (new_her_id(), common_pb2.ORGANISATION_KIND_GP, "12345678x"),
    }
    answers = set()
    stored_before = events_in(system.apps["registry"])
    for caller, metadata in callers.items():
        for attempt, (target, kind, number) in attempts.items():
            request_id = f"orgnr-probe-{uuid.uuid4().hex[:12]}"
            with pytest.raises(grpc.RpcError) as refused:
                register(
                    system, target, kind, number,
                    metadata=(*metadata, ("x-request-id", request_id)),
                )  # fmt: skip
            code = refused.value.code()
            assert code is grpc.StatusCode.PERMISSION_DENIED, (caller, attempt, code)
            answers.add((refused.value.details(), error_info(refused.value).SerializeToString()))
            assert audit_row(system, request_id).outcome == "PERMISSION_DENIED", (caller, attempt)
    assert len(answers) == 1, answers  # one answer, whatever the number
    assert events_in(system.apps["registry"]) == stored_before  # nothing recorded
    # The number is still the municipality's, and only the municipality's.
    o = organisations
    with system.engine.connect() as conn:
        holders = conn.execute(sa.select(o.c.her_id).where(o.c.orgnr == orgnr)).scalars().all()
    assert holders == [her_id]


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def mint_with_make_token(backend: dict[str, str], *args: str) -> str:
    """`make token ARGS=...` against the tests' issuer key and the system's directory."""
    env = {
        **os.environ,
        "CAREPATH_DEV_ISSUER": "1",
        "CAREPATH_VAR_DIR": str(ISSUER_HOME),
        "ACCESS_DATABASE_URL": backend["pathway"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.auth", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_development_issuer_puts_the_directorys_number_in_its_tokens(
    system: Harness, municipality: tuple[str, str], backend: dict[str, str]
) -> None:
    her_id, orgnr = municipality
    token = mint_with_make_token(
        backend, "--her-id", her_id, "--kind", "MUNICIPALITY", "--hpr", HPR
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims[HER_ID_CLAIM], claims[ORGNR_PARENT_CLAIM]) == (her_id, orgnr)
    status, request_id = list_pathways(system, her_id, token)
    assert status is grpc.StatusCode.OK
    assert audit_row(system, request_id).actor_orgnr == orgnr
    helseid_shaped = mint_with_make_token(backend, "--orgnr", orgnr, "--hpr", HPR)
    assert HER_ID_CLAIM not in jwt.decode(helseid_shaped, options={"verify_signature": False})
    assert list_pathways(system, her_id, helseid_shaped)[0] is grpc.StatusCode.OK
