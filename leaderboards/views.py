"""Web pages: server-rendered first paint, small vanilla JavaScript enhances (live updates, countdowns).

Results come from the table module (``processors.table``), the schedule from the SQL database.
The stores' errors propagate: ``alleycat_site.middleware.StoreErrorsMiddleware`` answers them with a friendly
503 page (or a 400 page for a forged cursor), never a 500. Only the live page degrades in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone

from alleycat_site.exceptions import is_store_unavailable
from alleycat_site.middleware import STORE_UNAVAILABLE_MESSAGE
from processors.domain.message import MAX_ID, MAX_ID_DIGITS
from races.models import Race, RaceClass, Racer
from races.selectors import (
    race_class_list_with_current,
    race_current_for_class,
    race_next_for_class,
    seconds_remaining,
)

from . import selectors
from .consumers import snapshot_message

LIVE_ROWS = 100
RESULTS_PAGE = 100
LEADERBOARD_PAGE = 100
RACER_RESULTS_PAGE = 50
PAST_RACES_PAGE = 10


def _int_param(request: HttpRequest, name: str) -> int | None:
    """A query-string id, or ``None`` when absent or not an id (ASCII digits, at most ``MAX_ID``)."""
    value = request.GET.get(name, "")
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


def _own_racer_id(request: HttpRequest) -> int | None:
    """The racer of the logged-in user, if any (one query, only for logged-in users)."""
    if not request.user.is_authenticated:
        return None
    return Racer.objects.filter(user_id=request.user.pk).values_list("racer_id", flat=True).first()


def clock(seconds: int) -> str:
    """Seconds as m:ss (a race lasts at most 60 minutes)."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def home(request: HttpRequest) -> HttpResponse:
    """Classes in display order with their current and next race (two queries)."""
    now = timezone.now()
    classes = [
        (item, clock(seconds_remaining(race=item.current, now=now)) if item.current else None)
        for item in race_class_list_with_current(now=now)
    ]
    return render(request, "leaderboards/home.html", {"classes": classes, "now": now})


def race_json(race: Race | None, now: datetime) -> dict[str, Any] | None:
    """A race as the live messages carry it (README, "Live messages"), snake_case."""
    if race is None:
        return None
    return {
        "id": race.pk,
        "class_id": race.race_class_id,
        "starts_at": race.starts_at.isoformat(),
        "ends_at": race.ends_at.isoformat(),
        "status": race.state_at(now),
    }


def live_data(
    *, race_class: RaceClass, race: Race | None, snapshot: selectors.LiveSnapshot | None, racer_id: int | None, now
) -> dict[str, Any]:
    """What live.js starts from (json_script): the page's first snapshot, shaped as the socket's ``snapshot``."""
    race_data = race_json(race, now)
    if snapshot is not None:
        first = snapshot_message(snapshot, race_data)
    else:  # no race running, or the store was unavailable: live.js fills in from the socket
        first = {
            "type": "snapshot",
            "race": race_data,
            "race_id": race.pk if race else None,
            "class_id": race_class.pk,
            "total": 0,
            "version": 0,
            "updated_at": None,
            "rows": [],
            "racer": None,
        }
    return {
        "class_id": race_class.pk,
        "racer_id": racer_id,
        "ws_path": f"/ws/classes/{race_class.pk}/",
        "all_time_url": reverse("leaderboards:class-all-time", args=[race_class.pk]),
        "current_race_url": f"/api/classes/{race_class.pk}/current-race/",
        "snapshot": first,
    }


def class_live(request: HttpRequest, class_id: int) -> HttpResponse:
    """ "Here now" and "All time" of the class's current race (updated over /ws/classes/<id>/), then its
    past races."""
    race_class = get_object_or_404(RaceClass, pk=class_id)
    now = timezone.now()
    race = race_current_for_class(class_id=class_id, now=now)
    upcoming = race_next_for_class(class_id=class_id, now=now) if race is None else None
    racer_id = _int_param(request, "racer")
    if racer_id is None:
        racer_id = _own_racer_id(request)
    races_cursor = request.GET.get("races") or None
    snapshot = None
    store_error = False
    past: list[selectors.PastRace] = []
    next_races = None
    try:
        if race is not None:
            snapshot = selectors.live_snapshot_get(race=race, top=LIVE_ROWS, racer_id=racer_id)
        past, next_races = selectors.class_past_races(class_id=class_id, limit=PAST_RACES_PAGE, cursor=races_cursor)
    except Exception as exc:
        # The page still works without the first rows: it fills in live once the store is back.
        if not is_store_unavailable(exc):
            raise
        store_error = True
    rows = snapshot.rows if snapshot else []
    own = snapshot.racer_row if snapshot else None
    if own is not None and any(row.racer_id == own.racer_id for row in rows):
        own = None  # already highlighted among the top rows
    return render(
        request,
        "leaderboards/class_live.html",
        {
            "race_class": race_class,
            "race": race,
            "upcoming": upcoming,
            "rows": rows,
            "own_row": own,
            "total": snapshot.total if snapshot else 0,
            "racer_id": racer_id,
            "store_error": store_error,
            "store_message": STORE_UNAVAILABLE_MESSAGE,
            "remaining": clock(seconds_remaining(race=race, now=now)) if race else None,
            "now": now,
            "live_data": live_data(race_class=race_class, race=race, snapshot=snapshot, racer_id=racer_id, now=now),
            "past_races": past,
            "next_races": next_races,
            "races_first_page": races_cursor is None,
        },
    )


def race_results(request: HttpRequest, race_id: int) -> HttpResponse:
    """Final standings of a race (A2, score desc), then DNF rows once the race has ended."""
    race = get_object_or_404(Race.objects.select_related("race_class"), pk=race_id)
    cursor = request.GET.get("cursor") or None
    rows, next_cursor = selectors.race_results_page(race=race, limit=RESULTS_PAGE, cursor=cursor)
    previous, following = selectors.race_neighbours(race=race)
    return render(
        request,
        "leaderboards/race_results.html",
        {
            "race": race,
            "state": race.state_at(timezone.now()),
            "rows": rows,
            "next_cursor": next_cursor,
            "previous_race": previous,
            "next_race": following,
        },
    )


def class_leaderboard(request: HttpRequest, class_id: int) -> HttpResponse:
    """All-time bests of a class (A3, score desc), paginated."""
    race_class = get_object_or_404(RaceClass, pk=class_id)
    cursor = request.GET.get("cursor") or None
    rows, next_cursor = selectors.class_leaderboard_page(class_id=class_id, limit=LEADERBOARD_PAGE, cursor=cursor)
    return render(
        request,
        "leaderboards/class_leaderboard.html",
        {"race_class": race_class, "rows": rows, "next_cursor": next_cursor, "first_page": cursor is None},
    )


# --- charts: inline SVG, computed here so the page needs no JavaScript to show them ---------

CHART_WIDTH = 640
CHART_HEIGHT = 220
CHART_PAD_LEFT = 48
CHART_PAD_RIGHT = 12
CHART_PAD_TOP = 12
CHART_PAD_BOTTOM = 28


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    segments: list[str]  # one polyline "x,y x,y" per run of known values
    dots: list[tuple[float, float, str]]  # (x, y, label) for small series
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]  # (x, label)
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(values: list[float | None], labels: list[str], *, dots: bool = False, x_tick_count: int = 6) -> Chart:
    """Scale a series into an SVG viewBox; ``None`` values break the line."""
    left, right = CHART_PAD_LEFT, CHART_WIDTH - CHART_PAD_RIGHT
    top, bottom = CHART_PAD_TOP, CHART_HEIGHT - CHART_PAD_BOTTOM
    known = [v for v in values if v is not None]
    y_max = _nice_max(max(known) if known else 0.0)
    count = len(values)

    def x_of(index: int) -> float:
        return round(left + (right - left) * (index / (count - 1) if count > 1 else 0.5), 1)

    def y_of(value: float) -> float:
        return round(bottom - (bottom - top) * value / y_max, 1)

    segments: list[str] = []
    current: list[str] = []
    points: list[tuple[float, float, str]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                segments.append(" ".join(current))
                current = []
            continue
        x, y = x_of(index), y_of(value)
        current.append(f"{x},{y}")
        if dots:
            points.append((x, y, f"{labels[index]}: {value:g}"))
    if current:
        segments.append(" ".join(current))
    y_ticks = [(y_of(y_max * i / 4), f"{y_max * i / 4:g}") for i in range(5)]
    x_ticks: list[tuple[float, str]] = []
    if count:
        step = max(1, (count - 1) // max(1, x_tick_count - 1))
        indexes = list(range(0, count, step))
        if indexes[-1] != count - 1 and count - 1 - indexes[-1] >= step / 2:
            indexes.append(count - 1)
        x_ticks = [(x_of(i), labels[i]) for i in indexes]
    return Chart(CHART_WIDTH, CHART_HEIGHT, segments, points, y_ticks, x_ticks, left, right, top, bottom)


def racer_detail(request: HttpRequest, racer_id: int) -> HttpResponse:
    """A racer's bests per class (A5), races (A4, newest first) with a chart of scores, and the
    per-second output of one chosen race."""
    cursor = request.GET.get("cursor") or None
    chosen_race_id = _int_param(request, "race")
    profile = selectors.racer_profile_get(racer_id=racer_id)
    if profile is None:
        raise Http404("No racer with this id.")
    results, next_cursor = selectors.racer_results_page(racer_id=racer_id, limit=RACER_RESULTS_PAGE, cursor=cursor)
    if chosen_race_id is None and results:
        chosen_race_id = results[0].race_id
    seconds = selectors.racer_race_seconds(race_id=chosen_race_id, racer_id=racer_id) if chosen_race_id else []
    summary = None
    if cursor is None and results:
        latest = Race.objects.filter(pk=results[0].race_id).first()
        summary = selectors.race_summary_get(race=latest, racer_id=racer_id) if latest else None
    oldest_first = list(reversed(results))
    score_chart = (
        line_chart([r.score for r in oldest_first], [f"Race {r.race_id}" for r in oldest_first], dots=True)
        if results
        else None
    )
    seconds_chart = line_chart(seconds, [str(i) for i in range(1, len(seconds) + 1)]) if seconds else None
    known_seconds = [v for v in seconds if v is not None]
    return render(
        request,
        "leaderboards/racer.html",
        {
            "racer_id": racer_id,
            "name": profile.name,
            "bests": profile.bests,
            "results": results,
            "next_cursor": next_cursor,
            "score_chart": score_chart,
            "seconds_chart": seconds_chart,
            "chosen_race_id": chosen_race_id,
            "seconds_count": len(known_seconds),
            "seconds_best": max(known_seconds) if known_seconds else None,
            "seconds_total": round(sum(known_seconds), 4) if known_seconds else None,
            "summary": summary,
        },
    )


@login_required
def ride(request: HttpRequest) -> HttpResponse:
    """The bike in the browser: pick a class, press Start, send cadence and resistance once a second;
    live rank, gap and personal-best cues while riding, a summary after the race."""
    racer = Racer.objects.filter(user_id=request.user.pk).first()
    now: datetime = timezone.now()
    classes = race_class_list_with_current(now=now)
    chosen = _int_param(request, "class")
    class_ids = [c.race_class.pk for c in classes]
    if chosen not in class_ids:
        chosen = class_ids[0] if class_ids else None
    chosen_item = next((c for c in classes if c.race_class.pk == chosen), None)
    data = None
    store_error = False
    if racer is not None and chosen_item is not None:
        race = chosen_item.current
        snapshot = None
        best = None
        try:
            if race is not None:
                snapshot = selectors.live_snapshot_get(race=race, top=LIVE_ROWS, racer_id=racer.racer_id)
            best = selectors.personal_best_score(class_id=chosen, racer_id=racer.racer_id)
        except Exception as exc:
            if not is_store_unavailable(exc):
                raise
            store_error = True
        data = live_data(
            race_class=chosen_item.race_class, race=race, snapshot=snapshot, racer_id=racer.racer_id, now=now
        )
        data["racer_name"] = racer.name
        data["ride"] = {
            "racer_id": racer.racer_id,
            "best_score": best,
            "summary_url": f"/api/racers/{racer.racer_id}/races/",
        }
    return render(
        request,
        "leaderboards/ride.html",
        {
            "racer": racer,
            "classes": classes,
            "chosen_class_id": chosen,
            "chosen": chosen_item,
            "now": now,
            "live_data": data,
            "store_error": store_error,
            "store_message": STORE_UNAVAILABLE_MESSAGE,
        },
    )
