# ruff: noqa: F811 - the fixtures imported from tests.leaderboards.conftest are parameters here
"""Voiding a racer's result (staff): the results, the personal best / all-time board and the history
ghost are recomputed, the void is logged with who and why. Against the moto server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from processors import clients, history_store
from races.integrations import race_identity_of
from races.models import Race, ResultVoid
from races.services import result_void
from tests.leaderboards.conftest import (  # noqa: F401 - fixtures
    _fresh_clients,
    history_bucket,
    make_race,
    race_class,
    seed_finals,
    seed_history,
    settle,
    table,
)

pytestmark = pytest.mark.django_db


def settle(table, race):
    identity = race_identity_of(race)
    table.put_race_identity(identity)
    table.settle_race(identity)


@pytest.fixture
def history(table, history_bucket, make_race):
    """Racer 7 rode three settled races of the class (500, 600, 550); racer 8 one (580); racer 9 one (400)."""
    races = [make_race(start_minutes=-60 + 10 * i, status=Race.Status.FINISHED) for i in range(3)]
    seed_finals(table, races[0], {7: 500.0, 9: 400.0}, names={7: "Ada Lovelace", 9: "Alan Turing"})
    seed_finals(table, races[1], {7: 600.0, 8: 580.0}, names={7: "Ada Lovelace", 8: "Grace Hopper"})
    seed_finals(table, races[2], {7: 550.0}, names={7: "Ada Lovelace"})
    for race in races:
        settle(table, race)  # as the pipeline does once it has passed the race's deadline
    seconds = {0: {1: 10.0, 2: 20.0}, 1: {1: 30.0, 2: 5.0, 3: 40.0}, 2: {1: 12.0, 2: 25.0}}
    for index, outputs in seconds.items():
        table.put_racer_race_seconds(races[index].pk, 7, outputs, source="test")
    for race in races:  # as the pipeline does: identity published, then the race settled
        settle(table, race)
    class_id = races[0].race_class_id
    seed_history(history_bucket, class_id, {7: {1: 30.0, 2: 25.0, 3: 40.0}, 9: {1: 9.0}})
    return races


def _history_row(bucket: str, class_id: int, racer_id: int):
    document, _etag = history_store.read_class_history(clients.aws_client("s3"), bucket, class_id)
    return document["racers"].get(str(racer_id))


def test_void_through_the_admin_action_recomputes_best_board_history_and_logs(
    admin_client,
    admin_user,
    table,
    history_bucket,
    history,
):
    race = history[1]
    class_id = race.race_class_id
    before = admin_client.get(f"/api/races/{race.pk}/results/").json()  # settled: cached from now on
    assert [row["racer_id"] for row in before["results"]] == [7, 8]
    changelist = reverse("admin:races_race_changelist")

    form = admin_client.post(changelist, {"action": "void_result", "_selected_action": [race.pk]})
    assert form.status_code == 200 and "Ada Lovelace (#7)" in form.content.decode()
    no_reason = admin_client.post(
        changelist, {"action": "void_result", "_selected_action": [race.pk], "apply": "1", "racer_id": "7"}
    )
    assert no_reason.status_code == 200 and "This field is required" in no_reason.content.decode()
    assert table.final_result(race.pk, 7) is not None

    done = admin_client.post(
        changelist,
        {
            "action": "void_result",
            "_selected_action": [race.pk],
            "apply": "1",
            "racer_id": "7",
            "reason": "Bike calibration fault reported by the gym",
        },
        follow=True,
    )
    assert any("Voided Ada Lovelace" in str(m) for m in done.context["messages"])

    assert [r.racer_id for r in table.race_results(race.pk).items] == [8]
    assert table.voided_racer_ids(race.pk) == {7} and table.voided_result(race.pk, 7).score == 600.0
    best = table.personal_best(class_id, 7)
    assert (best.score, best.race_id) == (550.0, history[2].pk)
    board = table.class_leaderboard(class_id).items
    assert [(b.racer_id, b.score) for b in board] == [(8, 580.0), (7, 550.0), (9, 400.0)]
    assert _history_row(history_bucket, class_id, 7) == [12.0, 25.0]  # second 3 came only from the voided race
    assert _history_row(history_bucket, class_id, 9) == [9.0]  # other racers untouched
    after = admin_client.get(f"/api/races/{race.pk}/results/").json()
    assert [row["racer_id"] for row in after["results"]] == [8]  # the cached settled page was replaced

    void = ResultVoid.objects.get()
    assert (void.race, void.racer_id, void.racer_name, void.voided_by) == (race, 7, "Ada Lovelace", admin_user)
    assert (void.score, void.best_before, void.best_after) == (600.0, 600.0, 550.0)
    assert void.reason == "Bike calibration fault reported by the gym"
    log = admin_client.get(reverse("admin:races_resultvoid_changelist"))
    assert log.status_code == 200 and "Ada Lovelace" in log.content.decode()
    assert "Bike calibration fault reported by the gym" in log.content.decode()  # why, in the list
    assert admin_client.get(reverse("admin:races_resultvoid_change", args=[void.pk])).status_code == 200

    again = admin_client.post(
        changelist,
        {"action": "void_result", "_selected_action": [race.pk], "apply": "1", "racer_id": "8", "reason": "x"},
        follow=True,
    )
    assert any("Voided Grace Hopper" in str(m) for m in again.context["messages"])
    assert table.personal_best(class_id, 8) is None  # no result left in the class: off the board
    with pytest.raises(ValidationError, match="already voided"):
        result_void(race=race, racer_id=7, reason="twice", user=admin_user)


def test_voiding_a_racers_only_result_removes_best_and_history_row(table, history_bucket, history, admin_user):
    race = history[0]
    void = result_void(race=race, racer_id=9, reason="Rode on a friend's account", user=admin_user)
    assert void.best_before == 400.0 and void.best_after is None
    assert table.personal_best(race.race_class_id, 9) is None
    assert _history_row(history_bucket, race.race_class_id, 9) is None
    # a best that did not come from the voided race stays as it is
    result_void(race=race, racer_id=7, reason="Wrong bike", user=admin_user)
    assert table.personal_best(race.race_class_id, 7).score == 600.0


def test_void_refuses_unsettled_races_unknown_results_and_blank_reasons(table, history, make_race, admin_user):
    with pytest.raises(ValidationError, match="reason"):
        result_void(race=history[0], racer_id=7, reason="  ", user=admin_user)
    with pytest.raises(ValidationError, match="no result"):
        result_void(race=history[0], racer_id=8, reason="typo", user=admin_user)
    running = make_race(start_minutes=-4, status=Race.Status.ACTIVE)
    table.put_race_identity(race_identity_of(running))
    with pytest.raises(ValidationError, match="settled"):
        result_void(race=running, racer_id=7, reason="too early", user=admin_user)
    ended = make_race(start_minutes=-30, status=Race.Status.FINISHED)  # ended, but the pipeline has not settled it
    seed_finals(table, ended, {7: 700.0})
    table.put_race_identity(race_identity_of(ended))
    with pytest.raises(ValidationError, match="settled"):
        result_void(race=ended, racer_id=7, reason="too early", user=admin_user)
    assert table.final_result(ended.pk, 7) is not None
    assert not ResultVoid.objects.exists()


def test_replace_personal_best_only_if_still_expected(table, history):
    class_id = history[0].race_class_id
    current = table.personal_best(class_id, 7)
    stale = type(current)(class_id, 7, current.name, 123.0, current.race_id)
    assert not table.replace_personal_best(class_id, 7, expected=stale, best=None)
    assert table.personal_best(class_id, 7) == current
    assert table.replace_personal_best(class_id, 7, expected=current, best=None)
    assert table.personal_best(class_id, 7) is None
