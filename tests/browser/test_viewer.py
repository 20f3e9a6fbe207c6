"""The coordinators' pathway viewer in a real browser (Debian's Chromium, driven by Playwright),
against the whole system on real parts: the demo loaded through all four services over gRPC,
the real broker, the nameko reactions, the projector and PathwayService, and the viewer as its
own process, exactly as `make run` starts it.

Screenshots of the worklist and the patient page are saved under artifacts/screenshots/ (or
$CAREPATH_ARTIFACTS) for people to look at; they are not committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from playwright.sync_api import Browser, Page, expect, sync_playwright

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
)
from shared.auth import bearer_metadata, mint_token
from shared.ids import FNR_SYSTEM
from tests.conftest import STORES
from tests.support import (
    ROOT,
    SECRET,
    Harness,
    demo_clients,
    demo_module,
    demo_reactions,
    drain_queue,
    free_port,
    make_fnr,
    running_system,
    unique_queue,
    wait_for,
)

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
pytestmark = [pytest.mark.browser, pytest.mark.broker]

ARTIFACTS = Path(os.environ.get("CAREPATH_ARTIFACTS", ROOT / "artifacts")) / "screenshots"


@dataclass
class Demo:
    system: Harness
    demo: ModuleType
    url: str

    @property
    def patient(self) -> str:
        return str(self.demo.PATIENT)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):  # like the broker and the database: fail, never skip
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, amqp_uri: str) -> Iterator[Demo]:
    """The demo as `make run` loads it, and the viewer process in front of PathwayService."""
    tmp = tmp_path_factory.mktemp("viewer")
    urls = {name: f"sqlite:///{tmp}/{name}.sqlite" for name in STORES}
    queue = unique_queue("pathway.viewer")
    demo = demo_module()
    with running_system(urls, amqp_uri, queue) as system, demo_reactions(amqp_uri, urls):
        expected = demo.load(demo_clients(system, demo), SECRET)
        stub = pathway_pb2_grpc.PathwayServiceStub(system.channel(system.pathway_server))
        token = bearer_metadata(mint_token(demo.COORDINATOR, SECRET))
        request = pathway_pb2.GetPathwayRequest(
            patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=demo.PATIENT),
            purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION,
        )

        def loaded() -> bool:
            try:
                return len(stub.GetPathway(request, metadata=token).timeline) >= expected
            except Exception:
                return False

        wait_for(loaded, timeout=60, what="the demo in the pathway")
        address = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "VIEWER_HTTP_ADDRESS": address,
            "PATHWAY_GRPC_ADDRESS": f"127.0.0.1:{system.pathway_server.port}",
            "CAREPATH_JWT_SECRET": SECRET,
            "VIEWER_DEV_SIGN_IN": "1",
            "CAREPATH_VAR_DIR": str(tmp),
        }
        viewer = subprocess.Popen([sys.executable, "-m", "services.viewer"], env=env, cwd=ROOT)
        try:
            wait_for(lambda: _healthy(f"http://{address}/helse"), what="the viewer")
            yield Demo(system, demo, f"http://{address}")
        finally:
            viewer.terminate()
            viewer.wait(timeout=20)
    drain_queue(amqp_uri, queue)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="nb-NO", timezone_id="Europe/Oslo"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page: Page, demo: Demo, municipality: str = "4201") -> None:
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Kommunens HER-id").fill(municipality)
    page.get_by_label("Ditt HPR-nummer (valgfritt)").fill("1203921")
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_patient(page: Page, demo: Demo, query: str = "") -> None:
    page.goto(f"{demo.url}/pasient/{demo.patient}{query}")
    expect(page.locator("svg#forlop")).to_be_visible()


def test_the_worklist_lists_the_demo_patient_as_overdue(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    row = page.locator(f"tr[data-patient='{demo.patient}']")
    expect(row).to_have_class("overdue")
    expect(row.get_by_text("Overskredet")).to_be_visible()
    expect(row).to_contain_text("Korttidsplass på sykehjem")
    expect(row).to_contain_text("Helseopplysninger venter på applikasjonskvittering")
    expect(row).to_contain_text("84 år")
    screenshot(page, "arbeidsliste")

    page.get_by_label("Frist overskredet").check()
    page.get_by_role("button", name="Vis").click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_be_visible()
    page.get_by_label("Innlagt nå").check()
    page.get_by_role("button", name="Vis").click()
    expect(page.get_by_text("Ingen pasienter i denne visningen.")).to_be_visible()
    page.get_by_label("Alle pasienter").check()
    page.get_by_label("Søk på fødselsnummer eller D-nummer").fill(demo.patient[:6])
    page.get_by_role("button", name="Vis").click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_be_visible()


def test_opening_the_patient_shows_three_lanes_and_the_stay_bar(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    page.get_by_role("link", name=f"{demo.patient[:6]} {demo.patient[6:]}").click()
    picture = page.locator("svg#forlop")
    expect(picture).to_be_visible()
    expect(picture.locator("g.lane text")).to_have_text(["Kommune", "Fastlege", "Sykehus"])
    stay = picture.locator("g.bar.stay")
    expect(stay).to_have_count(1)
    expect(stay.locator("title")).to_contain_text("Medisinsk sengepost 3")
    expect(picture.locator("g.bar.waiting title")).to_contain_text("4 døgn")
    expect(picture.locator("g.bar.waiting title")).to_contain_text("22\u00a0980\u00a0kr")
    expect(picture.locator("g.mark.message.ok").first).to_be_attached()
    expect(picture.locator("g.mark.message.pending").first).to_be_attached()
    expect(picture.locator("g.mark.deadline.breached").first).to_be_attached()
    expect(page.get_by_role("heading", name="Åpne oppgaver")).to_be_visible()
    expect(page.locator("table.events")).to_contain_text("Innlagt akutt på sykehus 59")
    expect(page.get_by_text("Utredning avsluttet (12 dager)")).to_be_visible()
    screenshot(page, "pasient")
    page.get_by_role("link", name="Siste måned").click()
    expect(page.locator("svg#forlop g.bar.stay")).to_have_count(1)
    screenshot(page, "pasient-siste-maned")


def test_the_medication_list_as_of_an_earlier_date_shows_the_dose_before_the_change(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_patient(page, demo)
    ramipril = page.locator("table.medications tr[data-medication='Ramipril'] td.dose")
    expect(ramipril).to_have_text("2.5 mg x 1")
    page.get_by_label("Vis listen slik den var").fill("2024-11-01")
    page.locator("form.inline").get_by_role("button", name="Vis").click()
    expect(page.get_by_role("heading", name="Legemidler per 1. november 2024")).to_be_visible()
    expect(ramipril).to_have_text("5 mg x 1")
    page.get_by_label("Vis listen slik den var").fill("2024-05-01")  # before any prescription
    page.locator("form.inline").get_by_role("button", name="Vis").click()
    expect(page.get_by_text("Ingen legemidler på listen på denne datoen.")).to_be_visible()


def test_the_worklist_and_patient_page_work_by_keyboard(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    link = page.get_by_role("link", name=f"{demo.patient[:6]} {demo.patient[6:]}")
    for _ in range(40):  # tab through the page until the patient's link has the focus
        page.keyboard.press("Tab")
        if link.evaluate("element => element === document.activeElement"):
            break
    else:
        pytest.fail("the patient's link cannot be reached with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("svg#forlop")).to_be_visible()
    details = page.locator("table.events details").first
    details.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(details).to_have_attribute("open", "")


def test_at_tablet_width_nothing_spills_sideways(browser: Browser, demo: Demo) -> None:
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="nb-NO")
    page = context.new_page()
    try:
        sign_in(page, demo)
        open_patient(page, demo)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        screenshot(page, "pasient-nettbrett")
    finally:
        context.close()


def test_another_municipality_sees_nothing_of_the_patient(page: Page, demo: Demo) -> None:
    sign_in(page, demo, municipality="4202")
    expect(page.get_by_text("Ingen pasienter i denne visningen.")).to_be_visible()
    page.goto(f"{demo.url}/pasient/{demo.patient}")
    expect(page.get_by_role("heading", name="Ingen tilgang")).to_be_visible()


def test_a_malformed_her_id_is_refused_with_the_reason(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Kommunens HER-id").fill("04201")
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "Innloggingen mislyktes: kommunens HER-id er 1–9 sifre, uten null foran."
    )


def test_without_signing_in_the_viewer_asks_for_it(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/pasient/{demo.patient}")
    expect(page.get_by_role("heading", name="Logg inn som koordinator")).to_be_visible()


def test_a_new_event_sent_over_grpc_appears_on_the_open_page_without_a_reload(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_patient(page, demo)
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("table.medications")).not_to_contain_text("Paracetamol")

    meds = medications_pb2_grpc.MedicationServiceStub(
        demo.system.channel(demo.system.servers["medications"])
    )
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    meds.PrescribeMedication(
        medications_pb2.PrescribeMedicationRequest(
            metadata=common_pb2.CommandMetadata(command_id="viewer-live", occurred_at=now),
            patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=demo.patient),
            medication=medications_pb2.Medication(atc_code="N02BE01", name="Paracetamol"),
            dose="1 g x 3 ved behov",
        ),
        metadata=bearer_metadata(mint_token(demo.demo.GP, SECRET)),
    )
    expect(page.locator("table.medications")).to_contain_text("Paracetamol", timeout=20_000)
    expect(page.locator("table.events tbody tr").first).to_contain_text("Paracetamol")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    expect(page.locator("#status")).to_have_text("Siden er oppdatert med nye hendelser.")


def test_a_newly_admitted_patient_appears_on_the_open_worklist_without_a_reload(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    page.evaluate("window.__sameDocument = true")
    newcomer = make_fnr(9, 9, 38, 250)
    expect(page.locator(f"tr[data-patient='{newcomer}']")).to_have_count(0)
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        demo.system.channel(demo.system.servers["admissions"])
    )
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))
    admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=common_pb2.CommandMetadata(command_id="viewer-admit", occurred_at=now),
            patient=common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=newcomer),
            ward="Kirurgisk sengepost 2",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id="4201",
            existing_service_user=True,
        ),
        metadata=bearer_metadata(mint_token(demo.demo.HOSPITAL_A, SECRET)),
    )
    row = page.locator(f"tr[data-patient='{newcomer}']")
    expect(row).to_contain_text("Innlagt på sykehus, Kirurgisk sengepost 2", timeout=20_000)
    expect(row).to_contain_text("Helseopplysninger til kommunen innen 24 timer")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
