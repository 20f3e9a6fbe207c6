"""The pathway viewer in a real browser (Debian's Chromium, driven by Playwright), against the
whole system on real parts: the register extract and the demo loaded through the services over
gRPC, the real broker, the nameko reactions, the projector, PathwayService and the registry's
AccessService, and the viewer as its own process, exactly as `make run` starts it. The
coordinators' pages and the citizen's own page (/innbygger) are both driven here.

Screenshots of the worklist, the patient page and the citizen's page are saved under
artifacts/screenshots/ (or $CAREPATH_ARTIFACTS) for people to look at; they are not committed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from playwright.sync_api import Browser, Page, expect

from carepath.v1 import (
    admissions_pb2,
    admissions_pb2_grpc,
    common_pb2,
    medications_pb2,
    medications_pb2_grpc,
    pathway_pb2,
    pathway_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from shared.actors import Actor
from shared.auth import bearer_metadata
from shared.ids import FNR_SYSTEM
from tests.browser.support import (
    ASLI,
    ASLI_EMERGENCY,
    CITIZEN_COOKIE,
    COORDINATOR_COOKIE,
    Demo,
    fact,
    open_demo_patient,
    open_patient,
    screenshot,
    sign_in,
    sign_in_as_citizen,
    viewer_process,
)
from tests.support import ISSUER, make_fnr, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.broker]


def test_the_worklist_lists_the_demo_patient_as_overdue(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    row = page.locator(f"tr[data-patient='{demo.patient}']")
    expect(row).to_have_class("overdue")
    expect(row.get_by_text("Overskredet")).to_be_visible()
    expect(row).to_contain_text("Korttidsplass på sykehjem")
    expect(row).to_contain_text("Helseopplysninger venter på applikasjonskvittering")
    expect(row).to_contain_text("84 år")
    expect(row).to_contain_text("Fjordvik helsehus, korttidsavdeling")  # where, by name
    expect(row).to_contain_text("venter på Fjordvik kommune")
    expect(row.locator(".badge.service")).to_have_text("Korttidsopphold")  # running now
    expect(row).not_to_contain_text("Kommune 4201")
    expect(page.locator("header.top")).to_contain_text("Fjordvik kommune, koordinator HPR 1203921")
    screenshot(page, "arbeidsliste")

    page.get_by_label("Frist overskredet").check()
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_be_visible()
    page.get_by_label("Innlagt nå").check()
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.get_by_text("Ingen pasienter i denne visningen.")).to_be_visible()
    page.get_by_label("På korttidsopphold").check()  # where she is, by the municipal service
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_be_visible()
    page.get_by_label("Har hjemmesykepleie").check()
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_have_count(0)
    page.get_by_label("Alle pasienter").check()
    page.get_by_label("Søk på fødselsnummer eller D-nummer").fill(demo.patient[:6])
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page.locator(f"tr[data-patient='{demo.patient}']")).to_be_visible()
    expect(page.get_by_label("Søk på fødselsnummer eller D-nummer")).to_have_value(demo.patient[:6])
    assert demo.patient[:6] not in page.url  # the search is the session's reference


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
    service = picture.locator("g.bar.service")  # the short-term place, in the Kommune lane
    expect(service).to_have_count(1)
    expect(service.locator("title")).to_contain_text("Korttidsopphold, Fjordvik helsehus")
    expect(page.locator("table.services")).to_contain_text("Pågår")
    expect(picture.locator("g.mark.message.ok").first).to_be_attached()
    expect(picture.locator("g.mark.message.pending").first).to_be_attached()
    expect(picture.locator("g.mark.deadline.breached").first).to_be_attached()
    expect(page.get_by_role("heading", name="Åpne oppgaver")).to_be_visible()
    expect(page.locator("table.events")).to_contain_text("Innlagt akutt på sykehus 59")
    expect(page.get_by_text("Utredning avsluttet (12 dager)")).to_be_visible()
    expect(page.get_by_text("Samlet forløpstid fra henvisning mottatt")).to_be_visible()
    screenshot(page, "pasient")
    page.get_by_role("link", name="Siste måned").click()
    expect(page.locator("svg#forlop g.bar.stay")).to_have_count(1)
    screenshot(page, "pasient-siste-maned")


def test_the_medication_list_as_of_an_earlier_date_shows_the_dose_before_the_change(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_demo_patient(page, demo)
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
        open_demo_patient(page, demo)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        screenshot(page, "pasient-nettbrett")
    finally:
        context.close()


def test_another_municipality_sees_nothing_of_the_patient(page: Page, demo: Demo) -> None:
    sign_in(page, demo, municipality=ASLI.her_id, hpr=str(ASLI.hpr))
    expect(page.get_by_text("Ingen pasienter i denne visningen.")).to_be_visible()
    open_patient(page, demo)
    expect(page.get_by_role("heading", name="Ingen tilgang")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Ramipril")


def test_a_malformed_her_id_is_refused_with_the_reason(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Kommunens HER-id").fill("04201")
    page.get_by_label("Ditt HPR-nummer").fill("1203921")
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "Innloggingen mislyktes: kommunens HER-id er 1–9 sifre, uten null foran."
    )


def test_without_signing_in_the_viewer_asks_for_it(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/pasient/en-referanse")
    expect(page.get_by_role("heading", name="Logg inn som koordinator")).to_be_visible()


def test_a_new_event_sent_over_grpc_appears_on_the_open_page_without_a_reload(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_demo_patient(page, demo)
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
        metadata=bearer_metadata(ISSUER.mint(demo.demo.GP)),
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
    # She lives in the municipality (Folkeregisteret): that puts her on its worklist.
    demo.system.register({"system": FNR_SYSTEM, "value": newcomer}, municipality="4201")
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
        metadata=bearer_metadata(ISSUER.mint(demo.demo.HOSPITAL_A)),
    )
    row = page.locator(f"tr[data-patient='{newcomer}']")
    expect(row).to_contain_text("Innlagt på sykehus, Kirurgisk sengepost 2", timeout=20_000)
    expect(row).to_contain_text("Helseopplysninger til kommunen innen 24 timer")
    expect(row).to_contain_text("Sykehuset Fjordvik")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_a_patient_who_died_has_a_banner_a_mark_on_the_picture_and_no_open_tasks(
    page: Page, demo: Demo
) -> None:
    deceased = make_fnr(3, 3, 31, 270)
    demo.system.register({"system": FNR_SYSTEM, "value": deceased}, municipality="4201")
    patient = common_pb2.PatientIdentifier(system=FNR_SYSTEM, value=deceased)
    admitted, died = Timestamp(), Timestamp()
    admitted.FromDatetime(datetime.now(UTC) - timedelta(days=3))
    died.FromDatetime(datetime.now(UTC) - timedelta(hours=5))
    admissions = admissions_pb2_grpc.AdmissionServiceStub(
        demo.system.channel(demo.system.servers["admissions"])
    )
    hospital = bearer_metadata(ISSUER.mint(demo.demo.HOSPITAL_A))
    admissions.AdmitPatient(
        admissions_pb2.AdmitPatientRequest(
            metadata=common_pb2.CommandMetadata(command_id="viewer-dies", occurred_at=admitted),
            patient=patient,
            ward="Medisinsk sengepost 1",
            admission_type=admissions_pb2.ADMISSION_TYPE_ACUTE,
            municipality_her_id="4201",
            existing_service_user=True,
        ),
        metadata=hospital,
    )
    registry = registry_pb2_grpc.RegistryServiceStub(
        demo.system.channel(demo.system.servers["registry"])
    )
    wait_for(lambda: _recorded_death(registry, patient, died, hospital), what="the hospital's stay")
    sign_in(page, demo)
    page.get_by_label("Døde").check()
    page.get_by_role("button", name="Vis", exact=True).click()
    row = page.locator(f"tr[data-patient='{deceased}']")
    expect(row).to_contain_text("Død", timeout=20_000)
    expect(row).to_contain_text("Ingenting venter")
    open_patient(page, demo, deceased)
    expect(page.get_by_role("heading", name="Pasienten er død")).to_be_visible()
    expect(page.locator("svg#forlop g.death title")).to_contain_text("Pasienten døde")
    expect(page.get_by_text("Ingen åpne oppgaver.")).to_be_visible()
    expect(page.locator("header.patient .where")).to_contain_text("Død")
    screenshot(page, "pasient-dod")


def _recorded_death(
    registry: registry_pb2_grpc.RegistryServiceStub,
    patient: common_pb2.PatientIdentifier,
    died: Timestamp,
    hospital: tuple[tuple[str, str]],
) -> bool:
    """The hospital records the death once its stay has reached the access policy."""
    try:
        registry.RecordDeath(
            registry_pb2.RecordDeathRequest(
                metadata=common_pb2.CommandMetadata(command_id="viewer-death", occurred_at=died),
                patient=patient,
            ),
            metadata=hospital,
        )
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.PERMISSION_DENIED:
            return False
        raise
    return True


def test_the_patient_page_names_every_organisation_from_the_directory(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_demo_patient(page, demo)
    header = page.locator("header.patient")
    expect(header).to_contain_text(
        "Korttidsplass på sykehjem (Fjordvik helsehus, korttidsavdeling)"
    )
    facts = header.locator("dl.facts")
    expect(fact(facts, "Bostedskommune")).to_have_text("Fjordvik kommune")
    expect(fact(facts, "Fastlege")).to_have_text(
        "Fjordvik legesenter (lege med HPR-nummer 9144900)"
    )
    expect(fact(facts, "Oppholdskommune")).to_have_text("Ingen registrert")
    lanes = page.locator("dl.lanes-who")
    expect(lanes).to_contain_text("Fjordvik kommune")
    expect(lanes).to_contain_text("Fjordvik legesenter")
    expect(lanes).to_contain_text("Sykehuset Fjordvik, Universitetssykehuset Nordvik")
    picture = page.locator("svg#forlop")
    expect(picture.locator("g.bar.stay title")).to_contain_text("Sykehuset Fjordvik")
    expect(picture.locator("g.bar.waiting title")).to_contain_text("betales av Fjordvik kommune")
    payments = page.get_by_role("region", name="Utskrivningsklar og kommunal betaling")
    expect(payments.get_by_role("cell", name="Fjordvik kommune")).to_be_visible()
    expect(page.locator("ul.tasklist")).to_contain_text("Venter på Fjordvik kommune")
    medications = page.locator("table.medications")
    expect(medications).to_contain_text("Fjordvik legesenter")
    expect(
        page.locator("section", has=page.get_by_role("heading", name="Legemidler nå"))
    ).to_contain_text("Sist samstemt 21. nov. 2024 kl. 10:00 av Fjordvik legesenter.")
    details = page.locator("table.events details").first
    details.locator("summary").click()
    expect(details).to_contain_text("Utført av")
    expect(page.locator("table.events dl").first).not_to_contain_text("Fastlegekontor 8134021")
    main = page.locator("main")
    for label in ("Kommune 4201", "Sykehus 59", "Sykehus 90234", "Fastlegekontor 8134021"):
        expect(main).not_to_contain_text(label)
    expect(page.get_by_role("region", name="Akuttilgang")).to_have_count(0)
    screenshot(page, "pasient-navn")


def test_a_read_on_emergency_access_shows_a_warning_that_it_is_logged_and_reviewed(
    page: Page, demo: Demo
) -> None:
    access = registry_pb2_grpc.AccessServiceStub(
        demo.system.channel(demo.system.servers["registry"])
    )
    access.RequestEmergencyAccess(
        registry_pb2.RequestEmergencyAccessRequest(
            patient=demo.patient_pb,
            reason=common_pb2.EMERGENCY_REASON_URGENT_CARE_WITHOUT_RELATIONSHIP,
            justification="Legevakt: pasienten er forvirret og kan ikke gjøre rede for medisinene.",
        ),
        metadata=bearer_metadata(ISSUER.mint(ASLI_EMERGENCY)),
    )
    sign_in(page, demo, municipality=ASLI_EMERGENCY.her_id, hpr=str(ASLI_EMERGENCY.hpr))
    open_demo_patient(page, demo)
    banner = page.get_by_role("region", name="Akuttilgang")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("logges, vises for pasienten og kontrolleres")
    screenshot(page, "pasient-akuttilgang")


def test_a_citizen_sees_their_own_pathway_and_who_has_looked_at_it(page: Page, demo: Demo) -> None:
    demo.read_pathway(demo.demo.COORDINATOR)  # the municipality reads her pathway
    with pytest.raises(grpc.RpcError) as refused:  # another municipality tries to
        demo.read_pathway(ASLI)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    sign_in_as_citizen(page, demo.url, demo.patient)
    expect(page.get_by_text(f"Fødselsnummer {demo.patient[:6]} {demo.patient[6:]}")).to_be_visible()
    where = page.get_by_role("region", name="Hvor du er nå")
    expect(where).to_contain_text("Korttidsplass på sykehjem: Fjordvik helsehus, korttidsavdeling")
    # the short-term place, from the municipality's start of it on her arrival (Oslo time)
    expect(where).to_contain_text("Siden 19. nov. 2024 kl. 14:00")
    registers = page.get_by_role("region", name="Fastlege og kommune")
    expect(fact(registers, "Fastlege")).to_contain_text("Fjordvik legesenter")
    expect(fact(registers, "Bostedskommune")).to_have_text("Fjordvik kommune")
    referrals = page.get_by_role("region", name="Åpne henvisninger")
    expect(referrals).to_contain_text("Fra Fjordvik legesenter til Universitetssykehuset Nordvik")
    expect(referrals).to_contain_text("Pakkeforløp for tykk- og endetarmskreft")
    ramipril = page.locator("table.citizen-medications tr[data-medication='Ramipril']")
    expect(ramipril).to_contain_text("2.5 mg x 1")
    timeline = page.locator("table.citizen-timeline")
    admitted = timeline.locator("tr[data-event-type='PatientAdmitted']")
    expect(admitted).to_contain_text("12. nov. 2024 kl. 14:10")
    expect(admitted).to_contain_text("Sykehuset Fjordvik")

    accesses = page.get_by_role("region", name="Hvem har sett på opplysningene dine")
    coordinator = accesses.locator("tbody tr", has_text="Fjordvik kommune").filter(
        has_text="Så pasientforløpet ditt"
    )
    expect(coordinator.first).to_contain_text("Kommunen du bor i")
    expect(coordinator.first).to_contain_text("Koordinering av tjenestene dine")
    expect(coordinator.first).to_contain_text("HPR-nummer 1203921")
    expect(coordinator.first).to_contain_text("Fikk tilgang")
    attempt = accesses.locator("tbody tr[data-outcome='avvist']", has_text="Åsli kommune")
    expect(attempt.first).to_contain_text("Avvist: hadde ikke tilgang")
    expect(attempt.first).to_contain_text("HPR-nummer 6611004")
    expect(accesses.locator("tbody tr", has_text="Deg selv").first).to_be_visible()
    screenshot(page, "innbygger")

    page.get_by_role("link", name="Eldre oppføringer").click()
    expect(page).to_have_url(f"{demo.url}/innbygger?side=" + page.url.split("side=")[1])
    expect(accesses.locator("tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name="De nyeste")).to_be_visible()


def test_an_emergency_access_is_flagged_in_the_citizens_list(page: Page, demo: Demo) -> None:
    sign_in_as_citizen(page, demo.url, demo.patient)
    accesses = page.get_by_role("region", name="Hvem har sett på opplysningene dine")
    flagged = accesses.locator("tbody tr.emergency", has_text="Ba om akuttilgang")
    expect(flagged.first).to_contain_text("Akuttilgang")
    expect(flagged.first).to_contain_text("Akutt helsehjelp uten kjent behandlingsforhold")
    expect(flagged.first).to_contain_text("Åsli kommune")


def test_the_citizens_token_lives_in_its_own_strict_httponly_cookie(page: Page, demo: Demo) -> None:
    sign_in_as_citizen(page, demo.url, demo.patient)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert COORDINATOR_COOKIE not in cookies
    cookie = cookies[CITIZEN_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/innbygger"  # never sent to the coordinators' pages
    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("heading", name="Logg inn og se ditt pasientforløp")).to_be_visible()
    assert CITIZEN_COOKIE not in {c["name"] for c in page.context.cookies()}


def test_logging_out_revokes_the_coordinators_token_at_the_services(page: Page, demo: Demo) -> None:
    """A token a coordinator signed in with stops working everywhere once they log out: the
    viewer puts it on the revocation list every service consults."""
    token = ISSUER.mint(demo.demo.COORDINATOR)
    stub = pathway_pb2_grpc.PathwayServiceStub(demo.system.channel(demo.system.pathway_server))
    request = pathway_pb2.GetPathwayRequest(
        patient=demo.patient_pb, purpose=common_pb2.ACCESS_PURPOSE_CARE_COORDINATION
    )
    assert stub.GetPathway(request, metadata=bearer_metadata(token)).timeline
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Eller lim inn et token").fill(token)
    page.get_by_role("button", name="Logg inn med token").click()
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()

    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("heading", name="Logg inn som koordinator")).to_be_visible()

    def refused() -> bool:
        try:
            stub.GetPathway(request, metadata=bearer_metadata(token))
        except grpc.RpcError as exc:
            return bool(exc.code() is grpc.StatusCode.UNAUTHENTICATED)
        return False

    wait_for(refused, timeout=5, what="the logged-out token refused by PathwayService")


def test_a_citizen_cannot_open_the_coordinators_pages(page: Page, demo: Demo) -> None:
    sign_in_as_citizen(page, demo.url, demo.patient)
    for path in ("/arbeidsliste", "/pasient/en-referanse"):
        page.goto(f"{demo.url}{path}")
        expect(page.get_by_role("heading", name="Logg inn som koordinator")).to_be_visible()
    citizen_session = {c["name"]: c for c in page.context.cookies()}[CITIZEN_COOKIE]["value"]
    citizen_token = ISSUER.mint(Actor.citizen(demo.patient))
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Eller lim inn et token").fill(citizen_token)
    page.get_by_role("button", name="Logg inn med token").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Innloggingen mislyktes: tokenet gjelder ikke en kommune."
    )
    # Even a citizen's session put in the coordinators' cookie by hand is refused.
    page.context.add_cookies(
        [{"name": COORDINATOR_COOKIE, "value": citizen_session, "url": demo.url}]
    )
    for path in ("/arbeidsliste", "/pasient/en-referanse"):
        page.goto(f"{demo.url}{path}")
        expect(page.get_by_role("heading", name="Ingen tilgang")).to_be_visible()
        expect(page.get_by_text("Visningen er for kommunens koordinatorer.")).to_be_visible()
        expect(page.locator("main")).not_to_contain_text("Ramipril")


def test_the_citizens_page_refuses_a_coordinators_token(page: Page, demo: Demo) -> None:
    coordinator_token = ISSUER.mint(demo.demo.COORDINATOR)
    page.goto(f"{demo.url}/innbygger/logg-inn")
    page.get_by_label("Eller lim inn et token").fill(coordinator_token)
    page.get_by_role("button", name="Logg inn med token").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Innloggingen mislyktes: tokenet gjelder ikke en innbygger."
    )
    sign_in(page, demo)  # a coordinator's session put in the citizen's cookie by hand
    coordinator_session = {c["name"]: c for c in page.context.cookies()}[COORDINATOR_COOKIE]
    page.context.add_cookies(
        [
            {
                "name": CITIZEN_COOKIE,
                "value": coordinator_session["value"],
                "url": f"{demo.url}/innbygger",
            }
        ]
    )
    page.goto(f"{demo.url}/innbygger")
    expect(page.get_by_role("heading", name="Ingen tilgang")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Ramipril")


def test_a_citizen_only_ever_sees_their_own_data(page: Page, demo: Demo) -> None:
    someone_else = make_fnr(4, 5, 61, 310)
    sign_in_as_citizen(page, demo.url, someone_else)
    expect(
        page.get_by_text("carepath har ingen opplysninger om forløpet ditt ennå.")
    ).to_be_visible()
    # No parameter picks another person: the page is the signed-in citizen's, whatever is asked.
    for query in (
        f"?pasient={demo.patient}",
        f"?patient={demo.patient}&value={demo.patient}&fodselsnummer={demo.patient}",
    ):
        page.goto(f"{demo.url}/innbygger{query}")
        expect(page.get_by_text(f"Fødselsnummer {someone_else[:6]}")).to_be_visible()
        main = page.locator("main")
        expect(main).not_to_contain_text(demo.patient[6:])
        expect(main).not_to_contain_text("Ramipril")
        expect(main).not_to_contain_text("Fjordvik kommune")  # no one has read her data
    response = page.goto(f"{demo.url}/innbygger/{demo.patient}")
    assert response is not None and response.status == 404
    response = page.goto(f"{demo.url}/innbygger?side=abc")
    assert response is not None and response.status == 400


def test_without_the_development_sign_in_citizens_come_through_id_porten(
    page: Page, demo: Demo, tmp_path: Path
) -> None:
    env = {**demo.env, "VIEWER_DEV_SIGN_IN": "0"}
    with viewer_process(env, tmp_path / "viewer.log") as url:
        page.goto(f"{url}/innbygger")
        expect(
            page.get_by_role("heading", name="Logg inn og se ditt pasientforløp")
        ).to_be_visible()
        expect(
            page.get_by_text("Innlogging skjer gjennom ID-porten via Helsenorge.")
        ).to_be_visible()
        expect(page.get_by_label("Fødselsnummer (11 sifre)")).to_have_count(0)
        page.get_by_label("Lim inn tokenet fra innloggingstjenesten").fill(
            ISSUER.mint(Actor.citizen(demo.patient))
        )
        page.get_by_role("button", name="Logg inn med token").click()
        expect(page.get_by_role("heading", name="Ditt pasientforløp")).to_be_visible()
        expect(page.locator("table.citizen-medications")).to_contain_text("Ramipril")


def test_the_citizens_page_fits_a_tablet(browser: Browser, demo: Demo) -> None:
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="nb-NO")
    page = context.new_page()
    try:
        sign_in_as_citizen(page, demo.url, demo.patient)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        screenshot(page, "innbygger-nettbrett")
    finally:
        context.close()


def test_the_viewers_log_never_names_a_person(demo: Demo) -> None:
    """Last in the file: by now the log holds every sign-in and page the tests above made."""
    text = demo.log.read_text()
    assert "signed in" in text
    assert demo.patient not in text
    assert make_fnr(4, 5, 61, 310) not in text
