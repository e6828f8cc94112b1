"""Reads for the leaderboards: the schedule (SQL) combined with results (DynamoDB) and history (S3).

DynamoDB is read only through ``processors.table``; S3 only through ``leaderboards.integrations``.
Errors are the stores' own (``InvalidCursor``, ``StoreUnavailable``, ``HistoryUnavailable``,
``CursorError``); the API layer turns them into HTTP answers.

Pagination: every list takes ``limit`` and an opaque ``cursor`` and returns ``next_cursor``
(``None`` on the last page). A cursor is the list's state — the table's raw LastEvaluatedKey, a
rank offset, a phase — signed once, here, with Django's ``Signer`` (the site's SECRET_KEY) and
salted with the list it belongs to, so a forged or foreign cursor is a ``CursorError`` (HTTP 400),
never a wrong page. Issued cursors stay far below ``MAX_CURSOR_LENGTH``, the bound the API enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from processors.table import FinalResult, LiveStandings, ResultsTable
from races.models import Race, RaceClass, Racer

SETTLED_CACHE_SECONDS = 24 * 60 * 60
STATUS_DNF = "dnf"
STATUS_FINISHED = "finished"

# Longest cursor the API accepts. Ours are ~150-250 characters (a compressed, signed LastEvaluatedKey of four
# short strings plus an offset); a longer one was not issued here.
MAX_CURSOR_LENGTH = 1024


class CursorError(ValueError):
    """A cursor we did not issue for this query (forged, foreign, corrupt): HTTP 400."""


def results_table() -> ResultsTable:
    from . import integrations

    return integrations.results_table()


def _sign(scope: str, state: dict[str, Any]) -> str:
    return signing.Signer(salt=f"leaderboards.cursor.{scope}").sign_object(state, compress=True)


def _unsign(scope: str, cursor: str) -> dict[str, Any]:
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise CursorError("This cursor was not issued for this list.")
    try:
        state = signing.Signer(salt=f"leaderboards.cursor.{scope}").unsign_object(cursor)
    except (signing.BadSignature, ValueError, TypeError, OverflowError) as exc:
        raise CursorError("This cursor was not issued for this list.") from exc
    if not isinstance(state, dict):
        raise CursorError("This cursor was not issued for this list.")
    return state


def _start_key(state: dict[str, Any]) -> dict[str, Any] | None:
    key = state.get("k")
    if key is not None and not isinstance(key, dict):
        raise CursorError("This cursor was not issued for this list.")
    return key


# --- races (SQL) -------------------------------------------------------------------------


def race_list(
    *,
    class_id: int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> tuple[list[Race], str | None]:
    """Races newest first (starts_at desc, id desc) and the next cursor: one query.

    ``status`` is judged by the clock, as ``Race.state_at`` does: a stale stored status never
    hides a race that is running now. ``since``/``until`` bound ``starts_at`` (>= / <).
    """
    now = now or timezone.now()
    races: QuerySet[Race] = Race.objects.select_related("race_class").order_by("-starts_at", "-id")
    if class_id is not None:
        races = races.filter(race_class_id=class_id)
    if status == Race.Status.CANCELLED:
        races = races.filter(status=Race.Status.CANCELLED)
    elif status:
        races = races.not_cancelled()
        if status == Race.Status.SCHEDULED:
            races = races.filter(starts_at__gt=now)
        elif status == Race.Status.ACTIVE:
            races = races.filter(starts_at__lte=now, ends_at__gt=now)
        elif status == Race.Status.FINISHED:
            races = races.filter(ends_at__lte=now)
    if since is not None:
        races = races.filter(starts_at__gte=since)
    if until is not None:
        races = races.filter(starts_at__lt=until)
    if cursor:
        state = _unsign("races", cursor)
        after = parse_datetime(str(state.get("s", "")))
        after_id = state.get("i")
        if after is None or not isinstance(after_id, int):
            raise CursorError("This cursor was not issued for this list.")
        races = races.filter(Q(starts_at__lt=after) | Q(starts_at=after, id__lt=after_id))
    page = list(races[: limit + 1])
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        last = page[-1]
        next_cursor = _sign("races", {"s": last.starts_at.isoformat(), "i": last.pk})
    return page, next_cursor


def race_get(*, race_id: int) -> Race | None:
    return Race.objects.select_related("race_class").filter(pk=race_id).first()


def race_results_settled(*, race: Race, now: datetime | None = None) -> bool:
    """True once the race's results can no longer change (served with a long cache lifetime).

    Not the wall clock: the pipeline marks the race's identity settled once it has passed the
    race's settle deadline and reconciled its results (processors.table ``settle_race``). One GetItem.
    """
    if race.status == Race.Status.CANCELLED:
        return False
    key = f"leaderboards:settled:{race.pk}"
    if cache.get(key):
        return True  # settling is for good: once seen, no need to ask DynamoDB again
    identity = results_table().race_identity(race.pk)  # the web's fail-fast client (a 503 within ~2 s)
    settled = identity is not None and identity.settled
    if settled:
        cache.set(key, True, SETTLED_CACHE_SECONDS)
    return settled


# --- race results (A2 + DNF from A1) -----------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    """One row of a race's results. ``rank`` is ``None`` for a DNF row."""

    rank: int | None
    racer_id: int
    name: str
    score: float
    second: int
    status: str
    finished_at_ms: int | None


def _dnf_rows(table: ResultsTable, race_id: int) -> list[ResultRow]:
    live = table.live_standings(race_id)
    if live is None:
        return []
    return [
        ResultRow(None, row.racer_id, row.name, row.score, row.second, STATUS_DNF, None)
        for row in live.rows
        if not row.finished
    ]


def race_results_page(
    *, race: Race, limit: int = 100, cursor: str | None = None, now: datetime | None = None
) -> tuple[list[ResultRow], str | None]:
    """Final results score desc (ties: racer id asc) with ranks 1, 2, …; then, once the race
    has ended, DNF rows (racers of the live item without a "final" message, last known score
    desc, no rank). Ranks continue across pages: the cursor carries the rank offset.

    Reads: one Query per page of finals; the live item (one GetItem) only on pages that reach
    the DNF rows.
    """
    now = now or timezone.now()
    table = results_table()
    scope = f"results.{race.pk}"
    state = _unsign(scope, cursor) if cursor else {"p": "f", "k": None, "o": 0}
    phase, offset = state.get("p"), state.get("o")
    if phase not in ("f", "d") or not isinstance(offset, int) or offset < 0:
        raise CursorError("This cursor was not issued for this list.")
    ended = now >= race.ends_at

    if phase == "d":
        dnf = _dnf_rows(table, race.pk)
        rows = dnf[offset : offset + limit]
        more = len(dnf) > offset + limit
        return rows, _sign(scope, {"p": "d", "o": offset + limit}) if more else None

    page = table.race_results(race.pk, limit=limit, start_key=_start_key(state))
    rows = [_final_row(offset + index + 1, result) for index, result in enumerate(page.items)]
    if page.last_key:
        return rows, _sign(scope, {"p": "f", "k": page.last_key, "o": offset + len(rows)})
    if not ended:
        return rows, None
    dnf = _dnf_rows(table, race.pk)
    room = limit - len(rows)
    rows.extend(dnf[:room])
    return rows, _sign(scope, {"p": "d", "o": room}) if len(dnf) > room else None


def _final_row(rank: int, result: FinalResult) -> ResultRow:
    return ResultRow(
        rank, result.racer_id, result.name, result.score, result.second, STATUS_FINISHED, result.finished_at_ms
    )


# --- live standings (A1) -----------------------------------------------------------------


@dataclass(frozen=True)
class RankedLiveRow:
    rank: int
    racer_id: int
    name: str
    score: float
    second: int
    output: float
    finished: bool


@dataclass(frozen=True)
class LiveSnapshot:
    """Bounded live standings: the top ``rows``, ``total`` racers, and one racer's own row."""

    race_id: int
    class_id: int
    version: int
    updated_at_ms: int | None
    total: int
    rows: list[RankedLiveRow]
    racer_row: RankedLiveRow | None


def live_snapshot_from_standings(
    standings: LiveStandings | None, *, race_id: int, class_id: int, top: int, racer_id: int | None = None
) -> LiveSnapshot:
    if standings is None:
        return LiveSnapshot(race_id, class_id, 0, None, 0, [], None)
    # Only the rows sent are built (a connect storm of viewers reads a 1,000-row board each time).
    rows = standings.rows
    ranked = [
        RankedLiveRow(rank, row.racer_id, row.name, row.score, row.second, row.output, row.finished)
        for rank, row in enumerate(rows[:top], start=1)
    ]
    own = None
    if racer_id is not None:
        for rank, row in enumerate(rows, start=1):
            if row.racer_id == racer_id:
                own = RankedLiveRow(rank, row.racer_id, row.name, row.score, row.second, row.output, row.finished)
                break
    return LiveSnapshot(
        race_id=standings.race_id,
        class_id=standings.class_id,
        version=standings.version,
        updated_at_ms=standings.updated_at_ms,
        total=len(rows),
        rows=ranked,
        racer_row=own,
    )


def live_snapshot_get(*, race: Race, top: int = 100, racer_id: int | None = None) -> LiveSnapshot:
    """The race's live standings (one GetItem), bounded to the top rows plus ``racer_id``'s row."""
    standings = results_table().live_standings(race.pk)
    return live_snapshot_from_standings(
        standings, race_id=race.pk, class_id=race.race_class_id, top=top, racer_id=racer_id
    )


# --- class leaderboard (A3) --------------------------------------------------------------


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    racer_id: int
    name: str
    score: float
    race_id: int


def class_exists(*, class_id: int) -> bool:
    return RaceClass.objects.filter(pk=class_id).exists()


def class_leaderboard_page(
    *, class_id: int, limit: int = 100, cursor: str | None = None
) -> tuple[list[LeaderboardRow], str | None]:
    """Each racer's best final score in the class, desc (ties: racer id asc), ranked across pages."""
    scope = f"leaderboard.{class_id}"
    state = _unsign(scope, cursor) if cursor else {"k": None, "o": 0}
    offset = state.get("o")
    if not isinstance(offset, int) or offset < 0:
        raise CursorError("This cursor was not issued for this list.")
    page = results_table().class_leaderboard(class_id, limit=limit, start_key=_start_key(state))
    rows = [
        LeaderboardRow(offset + index + 1, best.racer_id, best.name, best.score, best.race_id)
        for index, best in enumerate(page.items)
    ]
    next_cursor = _sign(scope, {"k": page.last_key, "o": offset + len(rows)}) if page.last_key else None
    return rows, next_cursor


# --- racers (SQL + A4/A5) ----------------------------------------------------------------


@dataclass(frozen=True)
class PersonalBestRow:
    class_id: int
    class_name: str
    score: float
    race_id: int


@dataclass(frozen=True)
class RacerProfile:
    racer_id: int
    name: str
    registered: bool
    bests: list[PersonalBestRow]


def racer_profile_get(*, racer_id: int) -> RacerProfile | None:
    """A racer and their personal best in each class, or ``None`` for an unknown racer.

    A racer is known when registered (SQL) or when they have at least one final result: bikes
    and the simulator may race under ids staff never registered. Reads: two queries, one
    GetItem per class (A5), plus one Query for an unregistered racer.
    """
    racer = Racer.objects.filter(pk=racer_id).first()
    table = results_table()
    if racer is not None:
        name, registered = racer.name, True
    else:
        latest = table.racer_results(racer_id, limit=1).items
        if not latest:
            return None
        name, registered = latest[0].name, False
    bests = []
    for race_class in RaceClass.objects.order_by("display_order", "name"):
        best = table.personal_best(race_class.pk, racer_id)
        if best is not None:
            bests.append(PersonalBestRow(race_class.pk, race_class.name, best.score, best.race_id))
    return RacerProfile(racer_id=racer_id, name=name, registered=registered, bests=bests)


def racer_exists(*, racer_id: int) -> bool:
    return Racer.objects.filter(pk=racer_id).exists()


@dataclass(frozen=True)
class RacerResultRow:
    race_id: int
    class_id: int
    class_name: str | None
    name: str
    score: float
    second: int
    finished_at_ms: int


def racer_results_page(
    *, racer_id: int, limit: int = 100, cursor: str | None = None
) -> tuple[list[RacerResultRow], str | None]:
    """A racer's final results, newest race first: one Query, one SQL query for the class names."""
    scope = f"racer-results.{racer_id}"
    start_key = _start_key(_unsign(scope, cursor)) if cursor else None
    page = results_table().racer_results(racer_id, limit=limit, start_key=start_key)
    class_ids = {result.class_id for result in page.items}
    names = dict(RaceClass.objects.filter(pk__in=class_ids).values_list("pk", "name")) if class_ids else {}
    rows = [
        RacerResultRow(
            result.race_id,
            result.class_id,
            names.get(result.class_id),
            result.name,
            result.score,
            result.second,
            result.finished_at_ms,
        )
        for result in page.items
    ]
    return rows, _sign(scope, {"k": page.last_key}) if page.last_key else None


def personal_best_score(*, class_id: int, racer_id: int) -> float | None:
    """A racer's best final score in a class (A5, one GetItem), None before any."""
    best = results_table().personal_best(class_id, racer_id)
    return best.score if best else None


def racer_race_seconds(*, race_id: int, racer_id: int) -> list[float | None]:
    """A racer's output per second of a race, index 0 = second 1 (one GetItem)."""
    return results_table().racer_race_seconds(race_id, racer_id)


# --- past races of a class (SQL + A2 top-1 + A1 count) -----------------------------------


@dataclass(frozen=True)
class PastRace:
    race: Race
    winner: ResultRow | None  # the top final result, None before any
    racer_count: int  # racers who rode (finished or not), from the live item


def class_past_races(
    *, class_id: int, limit: int = 10, cursor: str | None = None, now: datetime | None = None
) -> tuple[list[PastRace], str | None]:
    """A class's ended races, newest first, each with its winner and racer count.

    Reads: one SQL query; per race one Query (top result, A2 limit 1) and one GetItem (live item, A1).
    """
    races, next_cursor = race_list(
        class_id=class_id, status=Race.Status.FINISHED, limit=limit, cursor=cursor, now=now or timezone.now()
    )
    past: list[PastRace] = []
    table = results_table() if races else None
    for race in races:
        top = table.race_results(race.pk, limit=1).items
        live = table.live_standings(race.pk)
        past.append(PastRace(race, _final_row(1, top[0]) if top else None, len(live.rows) if live else 0))
    return past, next_cursor


def race_neighbours(*, race: Race) -> tuple[Race | None, Race | None]:
    """The class's previous and next race (by start time, cancelled ones skipped): two queries."""
    races = Race.objects.filter(race_class_id=race.race_class_id).not_cancelled()
    previous = races.filter(starts_at__lt=race.starts_at).order_by("-starts_at", "-id").first()
    following = races.filter(starts_at__gt=race.starts_at).order_by("starts_at", "id").first()
    return previous, following


# --- a racer's summary of one race (A2 + A1 + A5 + A4) -----------------------------------

SUMMARY_PREVIOUS_PAGES = 4


@dataclass(frozen=True)
class PreviousRace:
    race_id: int
    score: float


@dataclass(frozen=True)
class RaceSummary:
    race_id: int
    class_id: int
    racer_id: int
    name: str
    status: str  # finished, dnf
    rank: int | None  # None for a DNF
    total: int  # racers in the race, finished or not
    score: float
    best_score: float | None  # the racer's personal best in the class (may be this race)
    personal_best: bool  # this race is the racer's personal best in the class
    previous: PreviousRace | None  # the racer's race before this one in the same class

    @property
    def difference(self) -> float | None:
        """Score against the previous race in the class (positive: better)."""
        return round(self.score - self.previous.score, 4) if self.previous else None


def race_summary_get(*, race: Race, racer_id: int) -> RaceSummary | None:
    """How one racer did in one race: rank of N, score, personal best or not, against their previous race
    in the class. ``None`` when the racer has neither a final result nor a live row in the race.

    Reads: the race's final results (A2, paged; a race holds at most a few thousand), the live item (A1),
    the personal best (A5), and the racer's newest results (A4, a few pages at most).
    """
    table = results_table()
    finals: list[FinalResult] = []
    key = None
    while True:
        page = table.race_results(race.pk, limit=1000, start_key=key)
        finals.extend(page.items)
        key = page.last_key
        if not key:
            break
    live = table.live_standings(race.pk)
    finished_ids = {result.racer_id for result in finals}
    dnf = [row for row in live.rows if row.racer_id not in finished_ids] if live else []
    total = len(finals) + len(dnf)
    own = next(((index, r) for index, r in enumerate(finals) if r.racer_id == racer_id), None)
    if own is not None:
        rank, name, score, status = own[0] + 1, own[1].name, own[1].score, STATUS_FINISHED
    else:
        row = next((r for r in dnf if r.racer_id == racer_id), None)
        if row is None:
            return None
        rank, name, score, status = None, row.name, row.score, STATUS_DNF
    best = table.personal_best(race.race_class_id, racer_id)
    previous = None
    key, seen_this = None, False
    for _ in range(SUMMARY_PREVIOUS_PAGES):
        page = table.racer_results(racer_id, limit=50, start_key=key)
        for result in page.items:
            if result.race_id == race.pk:
                seen_this = True
            elif result.class_id == race.race_class_id and (seen_this or result.race_id < race.pk):
                previous = PreviousRace(result.race_id, result.score)
                break
        key = page.last_key
        if previous is not None or not key:
            break
    return RaceSummary(
        race_id=race.pk,
        class_id=race.race_class_id,
        racer_id=racer_id,
        name=name,
        status=status,
        rank=rank,
        total=total,
        score=score,
        best_score=best.score if best else None,
        personal_best=best is not None and best.race_id == race.pk,
        previous=previous,
    )
