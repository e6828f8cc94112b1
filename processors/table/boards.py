"""What a writer of live boards remembers of the boards it wrote: ``BoardMemory``.

The aggregator merges each window into its race's live board by a read, a merge and a put
conditional on the version read (``ResultsTable.merge_live``). A writer that is the only one of its
board (one shard per race; or a split board with as many parts as shards and the contract's key,
see ``items``) would read back exactly what it wrote a window before, and decode it again. Instead
it keeps the board it wrote (the racers' totals, their encoded rows, the version and ``updatedAt``)
and merges the next window into that, with a put conditional on that version and ``updatedAt``:
one request, no decode, and only the racers of the window encoded again.

When someone else wrote the board in between (another shard's aggregator, the settlement's
freeze, a process that has not got the memory) the condition fails and the merge is done as
before, from a read: nothing is lost, at the price of one refused put. So that a board several
writers take turns at does not cost a refused put every window, a refusal makes the writer read
first for its next writes of that board (1, then 2, 4 … up to ``MAX_READ_FIRST`` after refusals in
a row); a read that finds the board as this writer left it (same version and ``updatedAt``) puts
the memory back in use at once, and saves the decode as well.

A board taken for a merge (``trusted``, ``matching``) leaves the memory: the caller changes it in
place and gives it back (``remember``) only once its put succeeded, so a failed or refused write
can never leave a board here that differs from the stored one. Bounded: the last ``CAPACITY``
boards (a 1,000-racer board is ~0.3 MB of Python objects). Per process, not shared: in Lambda the
memory lives as long as the warm execution environment of its shard.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from processors.domain.standings import RacerTotal

CAPACITY = 32
MAX_READ_FIRST = 64

BoardKey = tuple[str, str]  # the item's (pk, sk)


@dataclass(slots=True)
class KnownBoard:
    """A board as this process last stored it: ``rows`` are ``items.board_row`` of ``totals``, racer by racer."""

    version: int
    updated_at_ms: int
    class_id: int
    totals: dict[int, RacerTotal]
    rows: dict[int, bytes]


class BoardMemory:
    """The boards (and split boards' summaries) this process wrote last; see the module docstring."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._boards: OrderedDict[BoardKey, KnownBoard] = OrderedDict()
        self._read_first: OrderedDict[BoardKey, list[int]] = OrderedDict()  # [writes left, next penalty]
        self._summaries: OrderedDict[int, tuple[int, int]] = OrderedDict()  # race -> (class, parts)
        self._lock = threading.Lock()  # a split board's parts are merged in threads

    def __len__(self) -> int:
        return len(self._boards)

    def trusted(self, key: BoardKey) -> KnownBoard | None:
        """The board to merge into without reading it (taken out), unless there is none or it was refused lately."""
        with self._lock:
            penalty = self._read_first.get(key)
            if penalty is not None and penalty[0] > 0:
                penalty[0] -= 1
                return None
            return self._boards.pop(key, None)

    def matching(self, key: BoardKey, version: int, updated_at_ms: int) -> KnownBoard | None:
        """After a read: the remembered board (taken out) if the read found it as this process left it."""
        with self._lock:
            known = self._boards.pop(key, None)
            if known is None or known.version != version or known.updated_at_ms != updated_at_ms:
                return None
            self._read_first.pop(key, None)  # nobody else wrote it since: trust the memory again
            return known

    def remember(self, key: BoardKey, board: KnownBoard) -> None:
        """``board`` is now what the table holds under ``key`` (a put of it succeeded, or nothing changed)."""
        with self._lock:
            self._boards[key] = board
            self._boards.move_to_end(key)
            while len(self._boards) > self._capacity:
                self._boards.popitem(last=False)

    def confirmed(self, key: BoardKey, board: KnownBoard) -> None:
        """A put from memory succeeded (nobody else wrote the board meanwhile): remember it, trust it again."""
        with self._lock:
            self._read_first.pop(key, None)
        self.remember(key, board)

    def refused(self, key: BoardKey) -> None:
        """A put from memory was refused (someone else wrote the board): read first for the next writes."""
        with self._lock:
            self._boards.pop(key, None)
            _left, penalty = self._read_first.pop(key, (0, 0))
            penalty = min(MAX_READ_FIRST, max(1, penalty * 2))
            self._read_first[key] = [penalty, penalty]
            while len(self._read_first) > 4 * self._capacity:
                self._read_first.popitem(last=False)

    def summary(self, race_id: int) -> tuple[int, int] | None:
        """(class, parts) of a race's split board, as its summary said (a summary never changes either)."""
        with self._lock:
            return self._summaries.get(race_id)

    def remember_summary(self, race_id: int, class_id: int, parts: int) -> None:
        with self._lock:
            self._summaries[race_id] = (class_id, parts)
            self._summaries.move_to_end(race_id)
            while len(self._summaries) > 4 * self._capacity:
                self._summaries.popitem(last=False)
