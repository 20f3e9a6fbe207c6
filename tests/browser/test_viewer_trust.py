"""The viewer against an outside attacker, in a real browser (issue 9): the development sign-in
only when turned on and only for a municipality of the directory; every POST from the viewer's
own pages only (CSRF token and origin); the security headers on every response; no personal
identifier in any address; patient references bound to the session; an idle timeout.
"""

from __future__ import annotations

import dataclasses
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from services.viewer.guard import CONTENT_SECURITY_POLICY
from tests.browser.support import (
    COORDINATOR_COOKIE,
    Demo,
    open_demo_patient,
    sign_in,
    sign_in_as_citizen,
    viewer_process,
)
from tests.support import ISSUER

pytestmark = [pytest.mark.browser, pytest.mark.broker]

ATTACKER = "http://angriper.test"
SIGN_IN_HEADING = "Logg inn som koordinator"


def csrf_of(page: Page) -> str:
    """The CSRF token the page's forms carry."""
    return page.locator("input[name=csrf]").first.get_attribute("value") or ""


def cookie_names(page: Page) -> set[str]:
    return {c["name"] for c in page.context.cookies()}


def still_signed_in(page: Page, demo: Demo) -> None:
    page.goto(f"{demo.url}/arbeidsliste")
    expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()


# --- development sign-in -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("her_id", "reason"),
    [
        ("59", "HER-id 59 er Sykehuset Fjordvik, ikke en kommune."),
        ("8134021", "HER-id 8134021 er Fjordvik legesenter, ikke en kommune."),
        ("7777777", "HER-id 7777777 finnes ikke i Adresseregisteret."),
    ],
)
def test_the_development_sign_in_takes_only_a_municipality_of_the_directory(
    page: Page, demo: Demo, her_id: str, reason: str
) -> None:
    page.goto(f"{demo.url}/logg-inn")
    page.get_by_label("Kommunens HER-id").fill(her_id)
    page.get_by_label("Ditt HPR-nummer").fill("1203921")
    page.get_by_role("button", name="Logg inn", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(f"Innloggingen mislyktes: {reason}")
    assert COORDINATOR_COOKIE not in cookie_names(page)
    page.goto(f"{demo.url}/arbeidsliste")
    expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible()


def test_without_the_development_sign_in_no_address_mints_a_token(
    page: Page, demo: Demo, tmp_path: Path
) -> None:
    env = {**demo.env, "VIEWER_DEV_SIGN_IN": "0"}
    with viewer_process(env, tmp_path / "viewer.log") as url:
        page.goto(f"{url}/logg-inn")
        expect(page.get_by_text("Koordinatorer logger inn gjennom HelseID")).to_be_visible()
        expect(page.get_by_label("Kommunens HER-id")).to_have_count(0)
        csrf = csrf_of(page)  # a genuine form token: only the missing sign-in refuses
        for path, fields in (
            ("/logg-inn", {"her_id": "4201", "hpr": "1203921"}),
            ("/innbygger/logg-inn", {"fodselsnummer": demo.patient}),
        ):
            response = page.request.post(
                f"{url}{path}", form={**fields, "csrf": csrf}, headers={"Origin": url}
            )
            assert response.status == 400
            assert "Innloggingen mislyktes" in response.text()
        assert not {COORDINATOR_COOKIE, "carepath_innbygger"} & cookie_names(page)
        # A token from the identity provider still signs in.
        page.get_by_label("Lim inn tokenet fra HelseID").fill(ISSUER.mint(demo.demo.COORDINATOR))
        page.get_by_role("button", name="Logg inn med token").click()
        expect(page.get_by_role("heading", name="Arbeidsliste")).to_be_visible()


# --- CSRF ----------------------------------------------------------------------------------


def test_a_form_on_another_site_cannot_sign_the_coordinator_out(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    page.route(
        f"{ATTACKER}/**",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<form method="post" action="{demo.url}/logg-ut">'
            '<input type="hidden" name="csrf" value="gjettet">'
            "<button>Vinn et gavekort</button></form>",
        ),
    )
    page.goto(f"{ATTACKER}/premie")
    with page.expect_response(f"{demo.url}/logg-ut") as posted:
        page.get_by_role("button", name="Vinn et gavekort").click()
    assert posted.value.status == 403
    still_signed_in(page, demo)


def test_a_post_with_the_wrong_origin_or_without_the_token_is_refused_and_changes_nothing(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    csrf = csrf_of(page)
    # Even with the session's cookie and its real token, another origin is refused ...
    for headers in ({"Origin": ATTACKER}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
        refused = page.request.post(f"{demo.url}/logg-ut", form={"csrf": csrf}, headers=headers)
        assert refused.status == 403
        assert "Skjemaet ble avvist" in refused.text()
    # ... and so is our own origin without the token, or with a wrong one.
    for form in ({}, {"csrf": "gjettet"}):
        refused = page.request.post(f"{demo.url}/logg-ut", form=form, headers={"Origin": demo.url})
        assert refused.status == 403
    refused = page.request.post(
        f"{demo.url}/pasient", form={"pasient": demo.patient}, headers={"Origin": demo.url}
    )
    assert refused.status == 403
    still_signed_in(page, demo)
    # Sign-out is a POST only: a link or an image cannot sign anyone out.
    assert page.request.get(f"{demo.url}/logg-ut").status == 405
    still_signed_in(page, demo)


def test_another_site_cannot_sign_a_browser_in_as_someone_else(
    browser: Browser, page: Page, demo: Demo
) -> None:
    fields = {"her_id": "4201", "hpr": "1203921"}
    refused = page.request.post(f"{demo.url}/logg-inn", form=fields, headers={"Origin": ATTACKER})
    assert refused.status == 403
    # Our origin, but no token from a sign-in page this browser fetched:
    refused = page.request.post(f"{demo.url}/logg-inn", form=fields, headers={"Origin": demo.url})
    assert refused.status == 403
    # The attacker's own sign-in page gives a token bound to the attacker's pre-session cookie.
    attacker = browser.new_context()
    try:
        attackers_page = attacker.new_page()
        attackers_page.goto(f"{demo.url}/logg-inn")
        token = csrf_of(attackers_page)
    finally:
        attacker.close()
    page.goto(f"{demo.url}/logg-inn")  # the victim has a pre-session cookie of their own
    refused = page.request.post(
        f"{demo.url}/logg-inn", form={**fields, "csrf": token}, headers={"Origin": demo.url}
    )
    assert refused.status == 403
    assert COORDINATOR_COOKIE not in cookie_names(page)


# --- headers -------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers_and_no_inline_code_is_needed(
    page: Page, demo: Demo
) -> None:
    responses: list[Response] = []
    blocked: list[str] = []
    page.on("response", lambda response: responses.append(response))
    page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    sign_in(page, demo)
    open_demo_patient(page, demo)
    page.get_by_role("link", name="Siste måned").click()
    expect(page.get_by_role("link", name="Siste måned")).to_have_attribute("aria-current", "page")
    with page.expect_response(lambda r: "/innhold" in r.url) as fragment:
        page.evaluate("fetch(document.getElementById('pasient').dataset.fragment)")
    assert fragment.value.status == 200

    checked = [r for r in responses if r.url.startswith(demo.url)]
    paths = {r.url.removeprefix(demo.url).split("?")[0] for r in checked}
    assert {"/logg-inn", "/arbeidsliste", "/statisk/viewer.css", "/statisk/viewer.js"} <= paths
    assert any(r.status == 303 for r in checked)  # redirects carry them too
    assert any(p.endswith("/hendelser") for p in paths)  # and the event stream
    for response in checked:
        headers = response.all_headers()
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, response.url
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in headers  # plain HTTP on loopback
        if "/statisk/" not in response.url:
            assert headers["cache-control"] == "no-store", response.url
    assert blocked == []  # no inline script or style anywhere: nothing was blocked

    session = {c["name"]: c for c in page.context.cookies()}[COORDINATOR_COOKIE]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert not session["secure"]  # HTTP here; Secure over TLS (next test)


def _get(url: str, headers: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """A plain GET: its headers (lower case) and its Set-Cookie lines."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        return (
            {k.lower(): v for k, v in response.headers.items()},
            response.headers.get_all("Set-Cookie") or [],
        )


def test_over_tls_through_a_trusted_proxy_hsts_is_sent_and_cookies_are_secure(
    demo: Demo, tmp_path: Path
) -> None:
    env = {**demo.env, "VIEWER_TRUSTED_PROXIES": "127.0.0.1"}
    with viewer_process(env, tmp_path / "viewer.log") as url:
        headers, cookies = _get(f"{url}/logg-inn", {"X-Forwarded-Proto": "https"})
        assert headers["strict-transport-security"] == "max-age=31536000"
        assert all("Secure" in c for c in cookies) and cookies
        headers, cookies = _get(f"{url}/logg-inn", {})
        assert "strict-transport-security" not in headers
        assert not any("Secure" in c for c in cookies)
    # A viewer that trusts no proxy believes no one's X-Forwarded-Proto.
    headers, _ = _get(f"{demo.url}/logg-inn", {"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in headers


# --- no identifier in an address; references bound to the session -------------------------


def _addresses_on(page: Page) -> list[str]:
    """Every address the page's links, forms and live regions name."""
    found: list[str] = page.evaluate(
        """() => [
            ...Array.from(document.querySelectorAll('a[href]'), a => a.href),
            ...Array.from(document.querySelectorAll('form[action]'), f => f.action),
            ...Array.from(document.querySelectorAll('[data-live]'), e => e.dataset.live),
            ...Array.from(document.querySelectorAll('[data-fragment]'), e => e.dataset.fragment),
        ]"""
    )
    return found


def test_no_fodselsnummer_is_in_any_address_along_the_demo_pathway(page: Page, demo: Demo) -> None:
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.on("framenavigated", lambda frame: visited.append(frame.url))

    sign_in(page, demo)
    visited += _addresses_on(page)
    page.get_by_label("Alle pasienter").check()
    page.get_by_label("Søk på fødselsnummer eller D-nummer").fill(demo.patient)
    page.get_by_role("button", name="Vis", exact=True).click()
    page.get_by_role("link", name=f"{demo.patient[:6]} {demo.patient[6:]}").click()
    expect(page.locator("svg#forlop")).to_be_visible()
    visited += _addresses_on(page)
    page.get_by_role("link", name="Siste måned").click()
    expect(page.get_by_role("link", name="Siste måned")).to_have_attribute("aria-current", "page")
    page.get_by_label("Vis listen slik den var").fill("2024-11-01")
    page.locator("form.inline").get_by_role("button", name="Vis").click()
    expect(page.get_by_role("heading", name="Legemidler per 1. november 2024")).to_be_visible()
    visited += _addresses_on(page)
    open_demo_patient(page, demo)  # by the worklist's form: posted, then a reference
    visited += _addresses_on(page)
    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible()
    sign_in_as_citizen(page, demo.url, demo.patient)
    visited += _addresses_on(page)

    assert len(visited) > 20
    for address in visited:
        assert demo.patient not in address, address
        assert demo.patient[:6] not in address, address  # not even the birth date


def test_a_patient_reference_from_another_session_is_not_found(
    browser: Browser, page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    open_demo_patient(page, demo)
    address = page.url
    # The same coordinator in another browser: the reference means nothing there.
    other = browser.new_context()
    try:
        elsewhere = other.new_page()
        sign_in(elsewhere, demo)
        for path in (address, f"{address}/innhold", f"{demo.url}/pasient/ukjent-referanse"):
            response = elsewhere.goto(path)
            assert response is not None and response.status == 404, path
            expect(elsewhere.get_by_role("heading", name="Fant ikke pasienten")).to_be_visible()
            expect(elsewhere.locator("main")).not_to_contain_text("Ramipril")
    finally:
        other.close()
    page.reload()  # in its own session it still works
    expect(page.locator("table.medications")).to_contain_text("Ramipril")


# --- idle timeout --------------------------------------------------------------------------


def test_an_idle_session_ends_and_the_open_page_goes_to_sign_in(
    browser: Browser, demo: Demo, tmp_path: Path
) -> None:
    env = {**demo.env, "VIEWER_IDLE_TIMEOUT_SECONDS": "2"}
    with viewer_process(env, tmp_path / "viewer.log") as url:
        context = browser.new_context(locale="nb-NO")
        try:
            page = context.new_page()
            quick = dataclasses.replace(demo, url=url)
            sign_in(page, quick)
            open_demo_patient(page, quick)
            # Nobody touches the page: its event stream ends the session and it reloads.
            expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible(timeout=15_000)
            expect(page.locator("table.medications")).to_have_count(0)
            page.goto(f"{url}/arbeidsliste")
            expect(page.get_by_role("heading", name=SIGN_IN_HEADING)).to_be_visible()
        finally:
            context.close()


def test_a_citizens_session_cannot_be_used_after_signing_out(page: Page, demo: Demo) -> None:
    sign_in_as_citizen(page, demo.url, demo.patient)
    session = {c["name"]: c for c in page.context.cookies()}["carepath_innbygger"]
    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("heading", name="Logg inn og se ditt pasientforløp")).to_be_visible()
    page.context.add_cookies([{**session}])  # the old cookie, put back by hand
    page.goto(f"{demo.url}/innbygger")
    expect(page.get_by_role("heading", name="Logg inn og se ditt pasientforløp")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Ramipril")
