"""A writer's memory of the live boards it wrote (``processors.table.boards``): one put a window when
nobody else writes the board, and never a lost second when somebody does. Against the embedded endpoint."""

from __future__ import annotations

import itertools
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.domain.standings import RacerTotal, apply_pending
from processors.table import ResultsTable, items
from processors.table.boards import MAX_READ_FIRST, BoardMemory, KnownBoard
from tests.processors.conftest import TABLE_NAME, publish_races
from tests.processors.factories import race_identity
from tests.processors.table.test_split_board import count_requests
from tests.processors.table.test_table import pending

_RACES = itertools.count()


def writer(parts: int = 1) -> ResultsTable:
    """Another writer (another shard's aggregator): its own client and its own memory."""
    return ResultsTable(boto3.client("dynamodb"), TABLE_NAME, board_parts=parts)


def expected_totals(windows: list[dict[str, Any]]) -> dict[int, tuple[int, int, int, str]]:
    totals: dict[int, RacerTotal] = {}
    for window in windows:
        apply_pending(totals, window)
    return {racer: (t.score_units, t.seconds, t.last_second, t.name) for racer, t in totals.items()}


def stored(table: ResultsTable, race_id: int) -> dict[int, tuple[int, int, int, str]]:
    return {racer: (t.score_units, t.seconds, t.last_second, t.name) for racer, t in table.live_totals(race_id).items()}


class TestMemory:
    def test_a_refused_board_is_read_first_for_longer_each_time(self) -> None:
        memory, key = BoardMemory(), ("RACE#1", "LIVE")

        def board(version: int) -> KnownBoard:
            return KnownBoard(version, version * 10, 3, {}, {})

        memory.remember(key, board(1))
        assert memory.trusted(key) == board(1)
        assert memory.trusted(key) is None  # taken out: the caller gives it back after its put
        refusals = []
        for version in range(2, 10):
            memory.refused(key)
            memory.remember(key, board(version))  # written after a read
            reads_first = 0
            while memory.trusted(key) is None:
                reads_first += 1
                memory.remember(key, board(version))
            refusals.append(reads_first)
        assert refusals == [1, 2, 4, 8, 16, 32, 64, MAX_READ_FIRST]
        # a read that finds the board as this writer left it trusts the memory again at once
        memory.refused(key)
        memory.remember(key, board(20))
        assert memory.matching(key, 20, 200) == board(20)
        memory.remember(key, board(21))
        assert memory.trusted(key) == board(21)

    def test_bounded(self) -> None:
        memory = BoardMemory(capacity=3)
        for race in range(10):
            memory.remember((f"RACE#{race}", "LIVE"), KnownBoard(1, 1, 3, {}, {}))
            memory.refused((f"RACE#{race}", "X"))
            memory.remember_summary(race, 3, 2)
        assert len(memory) == 3
        assert memory.trusted(("RACE#0", "LIVE")) is None and memory.trusted(("RACE#9", "LIVE")) is not None


class TestOneWriter:
    def test_each_window_after_the_first_is_one_put(self, table: ResultsTable, dynamodb: Any) -> None:
        seen = count_requests(dynamodb)
        windows = [
            pending(7, {r: [second] for r in range(1, 50)}, final={3} if second == 3 else set()) for second in (1, 2, 3)
        ]
        for window in windows:
            assert table.merge_live(7, 3, window).written
        assert seen == ["GetItem", "PutItem", "PutItem", "PutItem"]
        assert stored(table, 7) == expected_totals(windows)
        assert writer().live_standings(7).version == 3  # type: ignore[union-attr]
        # a window with nothing new writes nothing and asks nothing
        del seen[:]
        assert not table.merge_live(7, 3, windows[1]).written
        assert seen == []

    def test_a_split_board_part_is_one_put(self, table: ResultsTable, dynamodb: Any) -> None:
        four = ResultsTable(dynamodb, TABLE_NAME, board_parts=4)
        seen = count_requests(dynamodb)
        racers = [r for r in range(1, 200) if items.board_part(7, r, 4) == 2][:20]
        windows = [pending(7, {r: [second] for r in racers}) for second in (1, 2, 3)]
        for window in windows:
            assert four.merge_live(7, 3, window).written
        assert seen == ["BatchGetItem", "PutItem", "PutItem", "PutItem", "PutItem"]  # summary created once
        assert stored(table, 7) == expected_totals(windows)


class TestOtherWriters:
    def test_a_board_written_by_someone_else_is_read_and_merged(self, table: ResultsTable, dynamodb: Any) -> None:
        seen = count_requests(dynamodb)
        other = writer()
        windows = [pending(7, {1: [1]}), pending(7, {2: [1, 2]}), pending(7, {1: [2], 3: [1]}), pending(7, {3: [2]})]
        table.merge_live(7, 3, windows[0])
        other.merge_live(7, 3, windows[1])
        outcome = table.merge_live(7, 3, windows[2])
        # the put from memory was refused; read, merged and put again: nobody's racers lost
        assert outcome.written and seen == ["GetItem", "PutItem", "PutItem", "GetItem", "PutItem"]
        del seen[:]
        # the next write reads first, finds the board as it left it, and trusts its memory again
        table.merge_live(7, 3, windows[3])
        table.merge_live(7, 3, pending(7, {3: [3]}))
        assert seen == ["GetItem", "PutItem", "PutItem"]
        assert stored(table, 7) == expected_totals([*windows, pending(7, {3: [3]})])

    def test_a_settled_race_refuses_the_remembered_board(self, table: ResultsTable) -> None:
        publish_races(table, [7])
        table.merge_live(7, 3, pending(7, {1: [1, 2]}, final={1}))
        table.settle_race(race_identity(7, class_id=3), now_ms=5_000)
        outcome = table.merge_live(7, 3, pending(7, {1: [3]}))
        assert outcome.settled and not outcome.written
        assert stored(table, 7) == expected_totals([pending(7, {1: [1, 2]}, final={1})])

    def test_a_full_race_refuses_new_racers_from_memory_too(self, table: ResultsTable) -> None:
        table.merge_live(7, 3, pending(7, {1: [1], 2: [1]}), max_racers=3)
        writer().merge_live(7, 3, pending(7, {3: [1]}), max_racers=3)
        outcome = table.merge_live(7, 3, pending(7, {4: [1], 1: [2]}), max_racers=3)
        assert outcome.written and set(outcome.rejected) == {"4"}
        assert set(stored(table, 7)) == {1, 2, 3}

    # each example writes a race of its own (a fresh id), so sharing the function's table is safe
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        turns=st.lists(
            st.tuples(
                st.integers(0, 2),  # which writer
                st.dictionaries(st.integers(1, 12), st.lists(st.integers(1, 15), min_size=1, max_size=3), min_size=1),
            ),
            min_size=1,
            max_size=8,
        ),
        parts=st.sampled_from([1, 3]),
    )
    def test_any_turns_of_writers_with_memories_count_every_second_once(
        self, table: ResultsTable, turns: list[tuple[int, dict[int, list[int]]]], parts: int
    ) -> None:
        race = 2000 + next(_RACES)
        writers = [writer(parts) for _ in range(3)]
        windows = []
        for who, racer_seconds in turns:
            window = pending(race, racer_seconds)
            windows.append(window)
            writers[who].merge_live(race, 3, window)
        assert stored(table, race) == expected_totals(windows)


@pytest.mark.parametrize("parts", [1, 4])
def test_a_writer_without_the_memory_still_merges_from_a_read(table: ResultsTable, parts: int) -> None:
    # A process restarted (an execution environment replaced) has no memory: it reads what the last one wrote.
    writer(parts).merge_live(7, 3, pending(7, {r: [1] for r in range(1, 30)}))
    writer(parts).merge_live(7, 3, pending(7, {r: [2] for r in range(1, 30)}))
    assert stored(table, 7) == expected_totals(
        [pending(7, {r: [1] for r in range(1, 30)}), pending(7, {r: [2] for r in range(1, 30)})]
    )
