"""Chromium on the live "Here now" page while a short race runs through the real local pipeline.

Bikes (this test's feeder, like the simulator) and the ride page (a logged-in racer in a second
browser) put readings on the Kinesis stream (moto); the local runner aggregates them into the live
item, the publisher pushes standings through Redis to daphne, and the page updates without reload.
At the end of race A the rotation starts race B: the page follows it by itself, compares with the
personal bests the history handler wrote from race A ("All time"), and race A's results page shows
the finishers ranked and the racer without a final message as DNF.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.browser.conftest import Site
from tests.conftest import wait_until

pytestmark = pytest.mark.browser

RACE_SECONDS = 45
STREAM = "alleycat-bikes"
# racer id -> (cadence in race A, cadence in race B, resistance, sends a final message in A)
BIKES = {2: (100, 100, 50, True), 3: (120, 150, 60, True), 4: (70, 70, 30, False)}
NAMES = {2: "Bo Spoke", 3: "Cleo Crank", 4: "Dev Chain"}


class Bikes(threading.Thread):
    """Three simulated bikes: one message per racer per second, partition key = race id."""

    def __init__(self, ids: dict) -> None:
        super().__init__(daemon=True)
        self.ids = ids
        self.stop = threading.Event()
        self.race_b_started = threading.Event()  # bikes, like the simulator, ride the race the schedule runs
        self.kinesis = boto3.client("kinesis")
        self.error: Exception | None = None

    def records(self, now: float) -> list[dict]:
        in_a = now < self.ids["aEndsAt"]
        if not in_a and not self.race_b_started.is_set():
            return []
        start = self.ids["aStartsAt"] if in_a else self.ids["aEndsAt"]
        race_id = self.ids["raceA"] if in_a else self.ids["raceB"]
        second = int(now - start) + 1
        out = []
        for racer_id, (cadence_a, cadence_b, resistance, finishes) in BIKES.items():
            last = in_a and second >= RACE_SECONDS
            message = {
                "event": "final" if last and finishes else "update",
                "deviceTimestamp": int(now * 1000),
                "second": min(second, RACE_SECONDS) if in_a else second,
                "raceId": race_id,
                "name": NAMES[racer_id],
                "racerId": racer_id,
                "classId": self.ids["classId"],
                "cadence": (cadence_a if in_a else cadence_b) + second % 3,
                "resistance": resistance,
            }
            out.append({"Data": json.dumps(message).encode(), "PartitionKey": str(race_id)})
        return out

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                now = time.time()
                records = self.records(now)
                if records:
                    self.kinesis.put_records(StreamName=STREAM, Records=records)
                self.stop.wait(1 - (time.time() % 1) + 0.05)  # just after each whole second
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("ALLEYCAT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def history_seconds(site: Site, class_id: int, racer_id: int) -> int:
    """How many seconds of the racer the class's history object (the "All time" ghost) holds."""
    with urllib.request.urlopen(f"{site.url}/api/classes/{class_id}/history/", timeout=5) as response:
        history = json.loads(response.read())
    return sum(value is not None for value in history["racers"].get(str(racer_id), []))


def score_of(page, racer_id: int) -> str | None:
    cell = page.locator(f'#standings-rows tr[data-racer-id="{racer_id}"] td.score')
    return cell.text_content(timeout=1000) if cell.count() else None


def test_live_page_follows_a_simulated_race(site: Site, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ids = site.scenario("setup", "--seconds", str(RACE_SECONDS))
    bikes = Bikes(ids)
    bikes.start()
    try:
        _watch_the_race(site, browser, tmp_path, ids, bikes, expect)
    except Exception:
        for name in ("runner", "daphne-1"):
            print(f"--- {name}.log ---\n" + site.log(name)[-6000:])  # noqa: T201
        raise
    finally:
        bikes.stop.set()
        bikes.join(timeout=5)
    assert bikes.error is None, bikes.error


def _watch_the_race(site: Site, browser, tmp_path: Path, ids: dict, bikes: Bikes, expect) -> None:
    class_id, race_a, race_b = ids["classId"], ids["raceA"], ids["raceB"]

    # A spectator on a laptop.
    live = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    live.goto(f"{site.url}/")
    row = live.locator(f'tr[data-class-id="{class_id}"]')
    expect(row.locator("time.countdown")).to_have_text(re.compile(r"^0:[0-4]\d$"))
    shot(live, tmp_path, "home")
    row.get_by_role("link", name="Here now").click()
    expect(live).to_have_url(f"{site.url}/classes/{class_id}/")
    expect(live.locator("#race-title")).to_have_text(f"Race #{race_a}")
    live.evaluate("window.__sameDocument = true")  # gone if the page ever reloads

    # The rider on a phone: log in, pick the class, press Start.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ride = phone.new_page()
    ride.goto(f"{site.url}/")
    shot(ride, tmp_path, "home-phone")
    ride.get_by_role("link", name="Ride", exact=True).click()
    expect(ride).to_have_url(f"{site.url}/accounts/login/?next=/ride/")
    ride.get_by_label("Username").fill("rider")
    ride.get_by_label("Password").fill(site.rider_password)
    ride.get_by_role("button", name="Log in").click()
    expect(ride).to_have_url(f"{site.url}/ride/")
    expect(ride.get_by_label("Class")).to_have_value(str(class_id))
    ride.get_by_label("Cadence").fill("110")
    ride.locator("h1").click()  # the arrow keys act when no control has focus
    ride.keyboard.press("ArrowUp")
    expect(ride.locator("#cadence-value")).to_have_text("115")
    ride.get_by_role("button", name="Start").click()
    expect(ride.locator("#ride-status")).to_have_text(f"Riding in race #{race_a}.", timeout=10_000)
    expect(ride.locator("#ride-output")).to_have_text("157.5")  # (115 + 35) * (40 + 65) / 100, from the server

    # Rows appear (three bikes and the rider) and their scores change without a reload.
    expect(live.locator("#standings-rows tr[data-racer-id]")).to_have_count(4, timeout=25_000)
    first = wait_until(lambda: score_of(live, 3), timeout=5, what="Cleo's score")
    wait_until(lambda: score_of(live, 3) not in (None, first), timeout=15, what="Cleo's score to change")
    expect(live.locator("#standings-rows tr").first).to_have_attribute("data-racer-id", "3")  # highest output
    expect(live.locator("#total")).to_have_text("4")

    # The rider sees their own row, marked, in the ride page's standings.
    own = ride.locator('#standings-rows tr.own[data-racer-id="1"]')
    expect(own).to_be_visible(timeout=15_000)
    expect(own.locator("th")).to_contain_text("Ada Pedal")
    shot(ride, tmp_path, "ride-phone")

    live.locator("#view-switch").get_by_text("All time").click()
    expect(live.locator("#all-time-board")).to_be_visible()
    expect(live.locator("#standings")).to_be_hidden()
    shot(live, tmp_path, "live-race-a")

    # Race A ends: the rotation finishes it and starts race B; the page follows by itself.
    wait_until(lambda: time.time() >= ids["aEndsAt"] + 0.5, timeout=RACE_SECONDS + 10, what="the end of race A")
    # The ghost of race B is loaded once, when it starts: let the history handler catch up with
    # race A first (Firehose buffers a few seconds), as a rotation a few seconds late would.
    wait_until(lambda: history_seconds(site, class_id, 3) >= 25, timeout=40, interval=1, what="race A's history")
    rotation = site.scenario("rotate")
    bikes.race_b_started.set()
    assert rotation == {"finished": [race_a], "started": [race_b]}
    expect(live.locator("#race-title")).to_have_text(f"Race #{race_b}", timeout=10_000)
    expect(live.locator("#race-finished")).to_be_visible()
    expect(live.locator("#finished-link")).to_have_attribute("href", f"/races/{race_a}/")
    expect(live.locator("#caption-text")).to_have_text(f"Live standings of race #{race_b}")
    expect(live.locator('#all-time-rows tr[data-racer-id="3"]')).to_be_visible(timeout=20_000)
    assert live.evaluate("window.__sameDocument") is True

    # "All time": race A's seconds are now Cleo's personal bests; she rides harder in race B: a trophy.
    cleo = live.locator('#all-time-rows tr.live[data-racer-id="3"]')
    expect(cleo.get_by_role("img", name="new best at this second")).to_be_visible(timeout=30_000)
    best = float(cleo.locator("td").nth(2).text_content())  # rank, output, her own best at this second
    assert 150 < best < 200  # (120..122 + 35) * (60 + 65) / 100 at that second of race A
    shot(live, tmp_path, "live-race-b")

    # Race A's results: finishers ranked by score, the bike without a final message DNF.
    live.locator("#finished-link").click()
    expect(live).to_have_url(f"{site.url}/races/{race_a}/")

    def results_ready() -> bool:
        if (
            live.locator('#results tr[data-racer-id="2"]').count()
            and live.locator('#results tr.dnf[data-racer-id="4"]').count()
        ):
            return True
        live.reload()
        return False

    wait_until(results_ready, timeout=30, interval=1, what="race A's final results")
    ranked = live.locator("#results tbody tr:not(.dnf)")
    assert ranked.first.get_attribute("data-racer-id") == "3"
    assert ranked.first.locator("td").first.text_content() == "1"
    expect(live.locator('#results tr[data-racer-id="4"] td').first).to_have_text("DNF")
    shot(live, tmp_path, "results-race-a")

    # The winner's page: charts of scores over races and of her seconds in race A.
    live.get_by_role("link", name="Cleo Crank").click()
    expect(live).to_have_url(f"{site.url}/racers/3/?race={race_a}")
    expect(live.get_by_role("img", name="Score per race")).to_be_visible()

    def seconds_chart() -> bool:
        if live.get_by_role("img", name="Output per second").count():
            return True
        live.reload()
        return False

    wait_until(seconds_chart, timeout=20, interval=1, what="Cleo's per-second chart")
    expect(live.locator("#seconds-chart-title")).to_have_text("Output per second")
    shot(live, tmp_path, "racer-cleo")
