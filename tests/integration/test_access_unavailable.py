"""When the policy cannot know or cannot record, the call fails closed and says so: UNAVAILABLE
(retry), never INTERNAL, never an answer. A real gRPC server on loopback with real SQLite files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from carepath.v1 import common_pb2, medications_pb2, medications_pb2_grpc
from services.medications import api
from services.medications.application import MedicationsApplication
from services.pathway import migrate, readmodel
from shared import grpc_client
from shared.grpc_server import Server
from shared.ids import FNR_SYSTEM
from tests.conftest import GP
from tests.support import auth, grpc_server, make_fnr

PATIENT = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=make_fnr(6, 6, 66, 120))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    app = MedicationsApplication.from_url(f"sqlite:///{tmp_path}/medications.sqlite")
    urls = {
        name: f"sqlite:///{tmp_path}/{name}.sqlite" for name in ("pathway", "audit", "revocations")
    }
    with grpc_server("medications", api, app, urls) as server:
        yield server, tmp_path
    app.close()


def read(server: Server) -> None:
    with grpc_client.channel(f"127.0.0.1:{server.port}") as channel:  # retries UNAVAILABLE
        medications_pb2_grpc.MedicationServiceStub(channel).GetMedicationList(
            medications_pb2.GetMedicationListRequest(patient=PATIENT), metadata=auth(GP)
        )


def test_without_the_access_facts_a_call_is_unavailable(
    served: tuple[Server, Path],
) -> None:
    """The read model (where the relationships are kept) is not migrated yet: no decision."""
    server, _ = served
    with pytest.raises(grpc.RpcError) as caught:
        read(server)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_call_that_cannot_be_put_on_record_is_not_answered(
    served: tuple[Server, Path],
) -> None:
    server, tmp = served
    migrate.upgrade(readmodel.create_engine(f"sqlite:///{tmp}/pathway.sqlite"))
    with pytest.raises(grpc.RpcError) as caught:
        read(server)  # refused (no relationship), and on record
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    audit = sa.create_engine(f"sqlite:///{tmp}/audit.sqlite")
    with audit.begin() as conn:
        conn.exec_driver_sql("DROP TABLE audit_log")
    audit.dispose()
    with pytest.raises(grpc.RpcError) as caught:
        read(server)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "record" in (caught.value.details() or "")
