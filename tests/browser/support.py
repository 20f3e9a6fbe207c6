"""What the browser tests share: the demo system with the viewer in front of it, the viewer as
its own process, and the steps a user takes (sign in, open a patient)."""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from playwright.sync_api import Locator, Page, expect

from carepath.v1 import common_pb2, pathway_pb2, pathway_pb2_grpc
from shared.actors import Actor, OrgKind
from shared.auth import bearer_metadata
from shared.ids import FNR_SYSTEM
from tests.processes import Command, launch
from tests.support import ISSUER, ROOT, Harness, free_port, wait_for

CHROMIUM = os.environ.get("CAREPATH_CHROMIUM", "/usr/bin/chromium")
#: Chromium as root in a container, with nothing reaching for the (closed) internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=nb-NO",  # the users' language, also for the browser's own controls (dates)
]
ARTIFACTS = Path(os.environ.get("CAREPATH_ARTIFACTS", ROOT / "artifacts")) / "screenshots"


#: A municipality of the directory (Åsli kommune) with no care relationship with the patient.
ASLI = Actor(her_id="4301", org_kind=OrgKind.MUNICIPALITY, hpr="6611004")
#: A doctor at Åsli's legevakt who needs the patient's pathway in an emergency.
ASLI_EMERGENCY = Actor(her_id="4301", org_kind=OrgKind.MUNICIPALITY, hpr="7312456")
CITIZEN_COOKIE = "carepath_innbygger"
COORDINATOR_COOKIE = "carepath_sesjon"


@dataclass
class Demo:
    system: Harness
    demo: ModuleType
    url: str
    env: dict[str, str]
    log: Path

    @property
    def patient(self) -> str:
        return str(self.demo.PATIENT)

    @property
    def patient_pb(self) -> common_pb2.PatientIdentifier:
        return common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=self.patient)

    def read_pathway(self, actor: Actor) -> pathway_pb2.Pathway:
        """GetPathway over gRPC as `actor`, as any client system reads it."""
        stub = pathway_pb2_grpc.PathwayServiceStub(self.system.channel(self.system.pathway_server))
        reply: pathway_pb2.Pathway = stub.GetPathway(
            pathway_pb2.GetPathwayRequest(
                patient=self.patient_pb, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
            ),
            metadata=bearer_metadata(ISSUER.mint(actor)),
        )
        return reply


@contextmanager
def viewer_process(env: dict[str, str], log: Path) -> Iterator[str]:
    """`python -m services.viewer` on a free port, its log (stderr) in `log`; yields its URL."""
    address = f"127.0.0.1:{free_port()}"
    command = Command("viewer", [sys.executable, "-m", "services.viewer"], {})
    with log.open("ab") as stderr:
        viewer = launch(command, {**env, "VIEWER_HTTP_ADDRESS": address}, stderr)
        try:
            wait_for(lambda: _healthy(f"http://{address}/helse"), what="the viewer")
            yield f"http://{address}"
        finally:
            viewer.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def sign_in(page: Page, demo: Demo, municipality: str = "4201", hpr: str = "1203921") -> None:
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Kommunens HER-id").fill(municipality)
    page.get_by_label("Ditt HPR-nummer").fill(hpr)
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()


def sign_in_as_citizen(page: Page, url: str, fodselsnummer: str) -> None:
    page.goto(f"{url}/innbygger/logg-inn")
    page.get_by_label("Fødselsnummer (11 sifre)").fill(fodselsnummer)
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("heading", name="Ditt pasientforløp")).to_be_visible()


def fact(facts: Locator, label: str) -> Locator:
    """The value of one label: value pair of a definition list (dt/dd in a div)."""
    return facts.locator("div").filter(has=facts.page.locator("dt", has_text=label)).locator("dd")


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_patient(page: Page, demo: Demo, patient: str | None = None) -> None:
    """Open a patient by fødselsnummer from the worklist's form (posted, never in the address)."""
    page.goto(f"{demo.url}/arbeidsliste")
    page.get_by_label("Åpne pasient med fødselsnummer eller D-nummer").fill(patient or demo.patient)
    page.get_by_role("button", name="Åpne", exact=True).click()


def open_demo_patient(page: Page, demo: Demo) -> None:
    open_patient(page, demo)
    expect(page.locator("svg#forlop")).to_be_visible()
