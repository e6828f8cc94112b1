"""schemathesis against /api/schema/: every operation, generated requests (valid and invalid) over real HTTP to
Django's live server (every middleware; an HTTP client that decodes the gzip history as a client would) on a moto
table and bucket seeded with a few results. No 5xx, every documented answer matches its schema. Bounded (a fixed
number of examples per operation, derandomized) to run in well under a minute.

Things a WSGI client cannot see (a request line past daphne's limit) are in test_http_limits.py.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.leaderboards.conftest import seed_finals, seed_history, seed_live

EXAMPLES_PER_OPERATION = 20


# Loaded when the module is collected (the schema needs no database): one test per operation. (The lazy
# ``schemathesis.pytest.from_fixture`` loader does not run under pytest 9.)
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def seeded(transactional_db, table, history_bucket, finished_race, running_race, racer):
    seed_finals(table, finished_race, {racer.pk: 120.5, 8: 99.0, 9: 99.0})
    seed_live(table, running_race, {1: ("A", {1: 10.0}, None), racer.pk: ("Ada", {1: 20.0, 2: 5.5}, 1)})
    seed_history(history_bucket, finished_race.race_class_id, {racer.pk: {1: 101.0}})


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api(case, seeded, live_server):
    case.call_and_validate(base_url=live_server.url, checks=[not_a_server_error, response_schema_conformance])
