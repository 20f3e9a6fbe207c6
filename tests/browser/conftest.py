"""The browser tests' fixtures: one Chromium and one demo system (with its viewer) for the whole
package, and a fresh browser context (no cookies) for each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc
from shared.auth import bearer_metadata
from shared.broker import Tenant
from shared.ids import FNR_SYSTEM
from shared.times import OSLO
from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, Demo, viewer_process
from tests.conftest import STORES
from tests.processes import demo_reactions
from tests.support import (
    ISSUER,
    ISSUER_HOME,
    TOKEN_ENV,
    demo_module,
    drain_queue,
    load_demo,
    projector_queue,
    running_system,
    wait_for,
)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):  # like the broker and the database: fail, never skip
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory, broker: Tenant, amqp_uri: str) -> Iterator[Demo]:
    """The demo as `make run` loads it, and the viewer process in front of PathwayService."""
    tmp = tmp_path_factory.mktemp("viewer")
    urls = {name: f"sqlite:///{tmp}/{name}.sqlite" for name in STORES}
    queue = projector_queue("viewer")
    demo = demo_module()
    with running_system(urls, broker, queue) as system, demo_reactions(broker, urls):
        expected = load_demo(system, demo)
        stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
        token = bearer_metadata(ISSUER.mint(demo.COORDINATOR))
        request = pathway_pb2.GetPathwayRequest(
            patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=demo.PATIENT),
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        )

        def loaded() -> bool:
            try:
                timeline = stub.GetPathway(request, metadata=token).timeline
                # the commands' events, and the stay closed by the reaction to the discharge
                closed = any(e.event_type == "StayClosed" for e in timeline)
                return len(timeline) >= expected and closed
            except Exception:
                return False

        wait_for(loaded, timeout=60, what="the demo in the pathway")
        env = {
            **os.environ,
            "PATHWAY_GRPC_ADDRESS": f"127.0.0.1:{system.pathway_server.port}",
            "REGISTRY_GRPC_ADDRESS": f"127.0.0.1:{system.servers['registry'].port}",
            **TOKEN_ENV,
            "REVOCATIONS_DATABASE_URL": urls["revocations"],
            # The development sign-in mints with the tests' issuer (ISSUER_HOME/dev-issuer).
            "CAREPATH_DEV_ISSUER": "1",
            "VIEWER_DEV_SIGN_IN": "1",
            "CAREPATH_VAR_DIR": str(ISSUER_HOME),
            "LOG_LEVEL": "INFO",
        }
        log = tmp / "viewer.log"
        with viewer_process(env, log) as url:
            yield Demo(system, demo, url, env, log)
    drain_queue(amqp_uri, queue)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="nb-NO", timezone_id=OSLO.key
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
