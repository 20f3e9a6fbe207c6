"""The municipality's numbers (/statistikk) in a real browser, on the demo system: the demo's
patient waited for the municipality in November 2024 (ready Friday 15, received Tuesday 19),
so that month rests on one patient and is shown suppressed; the months around it are true
zeros. The charts are images with a title and a description, every number is also in the
table, and the months are chosen with the month picker."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import Demo, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.broker]


def test_the_worklist_leads_to_the_numbers_of_the_last_twelve_months(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    page.get_by_role("link", name="Styringstall for kommunen").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Styringstall for")
    charts = page.get_by_role("img")
    expect(charts).to_have_count(3)
    expect(page.get_by_role("img", name="Overliggerdøgn")).to_be_visible()
    expect(page.get_by_role("img", name="Meldinger besvart i tide")).to_be_visible()
    expect(
        page.get_by_role("img", name="Pakkeforløp for kreft innen standard forløpstid")
    ).to_be_visible()
    rows = page.get_by_role("table").locator("tbody tr")
    expect(rows).to_have_count(12)


def test_a_month_resting_on_one_patient_is_suppressed_in_chart_and_table(
    page: Page, demo: Demo
) -> None:
    sign_in(page, demo)
    page.goto(f"{demo.url}/statistikk")
    page.get_by_label("Fra måned").fill("2024-10")
    page.get_by_label("Til måned").fill("2024-12")
    page.get_by_role("button", name="Vis", exact=True).click()
    expect(page).to_have_url(f"{demo.url}/statistikk?fra=2024-10&til=2024-12")
    table = page.get_by_role("table")
    expect(table.locator("tbody tr")).to_have_count(3)
    november = table.locator("tbody tr").nth(1)
    expect(november.get_by_role("rowheader")).to_have_text("november 2024")
    # The four døgn of one patient, and the messages about her, are not shown: ":".
    expect(november.locator("td.suppressed")).to_have_count(2)
    expect(november.locator("td.suppressed").first).to_have_text(":")
    expect(table.locator("tbody tr").nth(0).locator("td").first).to_have_text("0")
    days = page.get_by_role("img", name="Overliggerdøgn")
    expect(days.locator("desc")).to_contain_text("oktober 2024 til desember 2024")
    expect(days.locator("desc")).to_contain_text("1 måned(er) er skjult")
    hidden = days.locator("g.column.suppressed")
    expect(hidden).to_have_count(1)
    expect(hidden.locator("title")).to_have_text(
        "november 2024: skjult (for få pasienter til å vise tallet)"
    )
    expect(hidden.locator("text.value")).to_have_text(":")
    # no number of hers anywhere on the page
    expect(page.locator("main")).not_to_contain_text("4 døgn")
    screenshot(page, "statistikk")


def test_a_backwards_month_range_is_explained_in_norwegian(page: Page, demo: Demo) -> None:
    sign_in(page, demo)
    page.goto(f"{demo.url}/statistikk?fra=2024-12&til=2024-10")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ugyldig periode")
    expect(page.locator("main")).to_contain_text("Til-måneden kan ikke være før fra-måneden.")
