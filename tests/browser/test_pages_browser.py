"""Chromium on the racers' pages with seeded data (``scenario pages``): the All time board against the
class history, past races and their navigation, the race summary, every page at 390 px without
horizontal page scroll and without serious axe-core violations, /api/docs/ with no network, and a
ride from the browser that ends in a summary.

axe-core comes from npm (package.json, ``npm ci`` by ``make test``) and is injected into each page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, Site, offline_context
from tests.browser.test_live_browser import shot

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
LAPTOP = {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make install-dev` (npm ci installs axe-core from package.json)")
    return AXE.read_text()


def serious_violations(page, axe_source: str) -> list[str]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def page_overflow(page) -> int:
    """Pixels the page is wider than the viewport (0: no horizontal page scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def log_in(page, site: Site) -> None:
    page.goto(f"{site.url}/accounts/login/?next=/ride/")
    page.get_by_label("Username").fill("rider")
    page.get_by_label("Password").fill(site.rider_password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.url}/ride/")


def test_pages_all_time_past_races_summary_phone_and_axe(site: Site, browser, tmp_path: Path, axe_source) -> None:
    from playwright.sync_api import expect

    ids = site.scenario("pages")
    class_id, running, ended = ids["classId"], ids["running"], ids["ended"]
    names = ids["names"]

    # --- All time on the class page, as racer 1 (?racer=) -------------------------------------
    laptop = browser.new_context(**LAPTOP).new_page()
    laptop.goto(f"{site.url}/classes/{class_id}/?racer=1")
    expect(laptop.locator("#standings-rows tr[data-racer-id]")).to_have_count(8)
    expect(laptop.locator("#standings-rows tr").first).to_have_attribute("data-racer-id", "2")
    laptop.locator("#view-switch").get_by_text("All time").click()
    board = laptop.locator("#all-time-rows")
    expect(laptop.locator("#all-time-second")).to_have_text(str(ids["liveSecond"]))
    # Racer k's best at every second is 100 + k. Riding now: racer 2 (200), the rider (135.5), six at 90.
    # Above the rider: racer 2 and the ghosts of racers 36..60 (136..160): rank 27 of 60 (52 ghosts + 8 riders).
    summary = laptop.locator("#all-time-summary")
    expect(summary).to_contain_text("you rank 27 of 60")
    expect(summary).to_contain_text("New personal best at this second (was 101.0)")
    own = board.locator('tr.own[data-racer-id="1"]')
    expect(own.locator("td").first).to_have_text("27")
    expect(own.get_by_role("img", name="new best at this second")).to_be_visible()
    expect(own.locator("td.output")).to_have_text("135.5")
    # The top 10 and the rider's neighbourhood (3 above, 3 below), not all 60 rows.
    expect(board.locator("tr[data-racer-id]")).to_have_count(17)
    ranks = [int(text) for text in board.locator("tr[data-racer-id] td:first-child").all_text_contents()]
    assert ranks == [*range(1, 11), *range(24, 31)]
    top = board.locator("tr[data-racer-id]")
    assert top.nth(0).get_attribute("data-racer-id") == "2" and "live" in top.nth(0).get_attribute("class")
    assert top.nth(1).get_attribute("data-racer-id") == "60"
    expect(top.nth(1).locator("th")).to_contain_text(names["60"])
    expect(top.nth(1).locator("td.output")).to_have_text("160.0")
    expect(board.locator("tr.gap")).to_have_count(2)
    # Ghosts of riders racing now are replaced by their live output (racer 7's ghost would be 107).
    assert board.locator('tr[data-racer-id="7"]').count() == 0
    shot(laptop, tmp_path, "all-time-1280")

    # --- past races: listed newest first, each to its results; results step to previous / next ---
    laptop.locator("#view-switch").get_by_text("Here now").click()
    past = laptop.locator("#past-races-table tbody tr")
    assert [past.nth(i).get_attribute("data-race-id") for i in range(4)] == [str(r) for r in reversed(ended)]
    expect(laptop.locator(f'#past-races-table tr[data-race-id="{ended[2]}"]')).to_contain_text(names["1"])
    expect(laptop.locator(f'#past-races-table tr[data-race-id="{ended[2]}"] td.num')).to_have_text("5")
    shot(laptop, tmp_path, "class-1280")
    laptop.get_by_role("link", name=f"#{ended[3]}", exact=True).click()
    expect(laptop).to_have_url(f"{site.url}/races/{ended[3]}/")
    expect(laptop.locator("#next-race")).to_have_attribute("href", f"/races/{running}/")
    laptop.locator("#previous-race").click()
    expect(laptop).to_have_url(f"{site.url}/races/{ended[2]}/")
    expect(laptop.locator("#results tbody tr").first).to_contain_text(names["1"])
    for race_id in (ended[1], ended[0]):
        laptop.locator("#previous-race").click()
        expect(laptop).to_have_url(f"{site.url}/races/{race_id}/")
    assert laptop.locator("#previous-race").count() == 0
    laptop.locator("#next-race").click()
    expect(laptop).to_have_url(f"{site.url}/races/{ended[1]}/")
    shot(laptop, tmp_path, "results-1280")

    # --- the racer page's summary of their latest race ---------------------------------------
    laptop.goto(f"{site.url}/racers/1/")
    summary = laptop.locator("#race-summary")
    expect(summary.get_by_role("link", name=f"#{ended[2]}")).to_be_visible()
    expect(summary.locator("#summary-rank")).to_have_text("1 of 5")
    expect(summary.locator("#summary-score")).to_have_text("4200.0")
    expect(summary.locator("#summary-best")).to_contain_text("New personal best")
    expect(summary.locator("#summary-previous")).to_have_text(f"#{ended[0]}: 4000.0 +200.0")
    shot(laptop, tmp_path, "racer-1280")

    # --- every page on a phone: no horizontal page scroll, no serious axe violation -----------
    # bypass_csp: axe-core is injected as an inline script, which the site's CSP rightly refuses; the
    # pages' own scripts run under the CSP in the laptop context above.
    phone = browser.new_context(**PHONE, bypass_csp=True).new_page()
    log_in(phone, site)
    pages = {
        "home": "/",
        "class": f"/classes/{class_id}/?racer=1",
        "class-all-time": f"/classes/{class_id}/?racer=1#all-time",
        "leaderboard": f"/classes/{class_id}/leaderboard/",
        "results": f"/races/{ended[2]}/",
        "racer": "/racers/1/",
        "ride": f"/ride/?class={class_id}",
    }
    failures = {}
    for name, path in pages.items():
        phone.goto(f"{site.url}{path}")
        phone.wait_for_load_state("networkidle")
        if name == "class-all-time":
            expect(phone.locator("#all-time-summary")).to_contain_text("you rank")
        overflow = page_overflow(phone)
        violations = serious_violations(phone, axe_source)
        if overflow > 0 or violations:
            failures[name] = {"overflow_px": overflow, "axe": violations}
        shot(phone, tmp_path, f"{name}-390")
    # The live table keeps its output column on a phone (columns collapse, the page does not scroll).
    phone.goto(f"{site.url}/classes/{class_id}/")
    expect(phone.locator("#standings thead th", has_text="Output")).to_be_visible()
    expect(phone.locator("#standings thead th", has_text="Second")).to_be_hidden()
    phone.context.close()
    logged_out = browser.new_context(**PHONE, bypass_csp=True).new_page()
    logged_out.goto(f"{site.url}/accounts/login/")
    login_overflow, login_axe = page_overflow(logged_out), serious_violations(logged_out, axe_source)
    if login_overflow > 0 or login_axe:
        failures["login"] = {"overflow_px": login_overflow, "axe": login_axe}
    assert not failures, json.dumps(failures, indent=2)


def test_api_docs_render_with_no_network(site: Site, browser) -> None:
    from playwright.sync_api import expect

    context, outside = offline_context(browser, site, **LAPTOP)
    page = context.new_page()
    page.goto(f"{site.url}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text("/api/races/{race_id}/results/", exact=True).first).to_be_visible()
    assert outside == [], outside


def test_ride_shows_rank_gap_cues_and_a_summary(site: Site, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ids = site.scenario("pages")
    class_id = ids["classId"]
    ride = browser.new_context(**PHONE).new_page()
    log_in(ride, site)
    ride.goto(f"{site.url}/ride/?class={class_id}")
    ride.get_by_role("button", name="Start").click()
    expect(ride.locator("#ride-status")).to_have_text(f"Riding in race #{ids['running']}.", timeout=15_000)
    # Live rank among the 8 riders and the gap to racer 2 (6,000 points from the seeded 30 seconds).
    expect(ride.locator("#ride-rank")).to_have_text("2 of 8", timeout=30_000)
    expect(ride.locator("#ride-gap")).to_have_text(re.compile(rf"^\d+\.\d behind {ids['names']['2']}$"))
    # The rider's best at every second is 101.0; at 80 rpm and resistance 40 they ride widely above it.
    expect(ride.locator("#ride-cue")).to_contain_text("New best at second", timeout=20_000)
    shot(ride, tmp_path, "ride-riding-390")
    ride.get_by_role("button", name="Finish").click()
    summary = ride.locator("#ride-summary")
    expect(summary).to_be_visible(timeout=10_000)
    expect(summary.locator("#ride-summary-status")).to_have_text("Your result is in.", timeout=60_000)
    # Only the rider has finished: 1st of the 8 who rode. Against their 4200 best (race 2, also their last
    # race in the class): how long the ride lasted on a loaded machine decides which side of it they are.
    expect(summary.locator("#summary-rank")).to_have_text("1 of 8")
    score = float(summary.locator("#summary-score").text_content())
    assert score > 2745.5  # the seeded 30 seconds and what the rider rode
    previous, race_2 = summary.locator("#summary-previous"), ids["ended"][2]
    if score > 4200:
        expect(summary.locator("#summary-best")).to_have_text("trophy New personal best")
        expect(previous).to_have_text(re.compile(rf"^#{race_2}: 4200\.0 \+\d+\.\d$"))
    else:
        expect(summary.locator("#summary-best")).to_have_text("No, best 4200.0")
        expect(previous).to_have_text(re.compile(rf"^#{race_2}: 4200\.0 -\d+\.\d$"))
    shot(ride, tmp_path, "ride-summary-390")
