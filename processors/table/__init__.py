"""The one module that owns the DynamoDB table: keys, item shapes, reads, writes, cursors.

Django (``leaderboards/``) and the handlers import from here only; no other code builds a key.
"""

from processors.domain.schedule import RaceIdentity
from processors.table.items import (
    final_results_from_stream,
    is_live_image,
    is_live_part_image,
    live_header,
    live_standings_from_item,
    personal_best_of,
)
from processors.table.models import (
    FinalResult,
    InvalidCursor,
    LiveRow,
    LiveStandings,
    Page,
    PersonalBest,
    StoreUnavailable,
    TableError,
)
from processors.table.schema import create_table
from processors.table.store import MergeOutcome, ResultsTable, SettleOutcome, Watermark, get_results_table

__all__ = (
    "FinalResult",
    "InvalidCursor",
    "LiveRow",
    "LiveStandings",
    "Page",
    "MergeOutcome",
    "PersonalBest",
    "RaceIdentity",
    "ResultsTable",
    "SettleOutcome",
    "StoreUnavailable",
    "TableError",
    "Watermark",
    "create_table",
    "final_results_from_stream",
    "is_live_image",
    "is_live_part_image",
    "live_header",
    "live_standings_from_item",
    "personal_best_of",
    "get_results_table",
)
