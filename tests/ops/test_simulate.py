"""``manage.py simulate``: finds the class's current race in the schedule and plays it into the stream."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ops.management.commands.simulate import SYNTHETIC_RACER_BASE, _racer_pairs
from processors.local.bootstrap import bootstrap
from processors.local.template import load_local_settings
from races.models import Racer
from tests.factories import RaceClassFactory, RaceFactory, RacerFactory

pytestmark = pytest.mark.django_db


def read_stream(name: str) -> list[dict]:
    kinesis = boto3.client("kinesis")
    messages = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        messages += [
            json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        ]
    return messages


def test_simulate_plays_the_current_race_with_racer_names_from_the_database(aws, settings):
    resources = bootstrap(None, load_local_settings())
    settings.ALLEYCAT_STREAM = resources.stream_name
    race_class = RaceClassFactory()
    now = timezone.now()
    race = RaceFactory(race_class=race_class, starts_at=now - timedelta(seconds=30), ends_at=now + timedelta(minutes=4))
    RacerFactory(racer_id=1, name="Ada Lovelace")
    RacerFactory(racer_id=2, name="Grace Hopper")

    call_command(
        "simulate", "--racers", "4", "--class", str(race_class.pk), "--seconds", "3", "--speed", "20", "--no-progress"
    )

    messages = read_stream(resources.stream_name)
    assert len(messages) == 12 and {m["raceId"] for m in messages} == {race.pk}
    names = {m["racerId"]: m["name"] for m in messages}
    assert names[1] == "Ada Lovelace" and names[2] == "Grace Hopper" and len(names) == 4
    seconds = sorted({m["second"] for m in messages})
    # joined 30 s into the race: it plays the race's own seconds from now on, final at the last one played
    assert len(seconds) == 3 and 30 <= seconds[0] <= 33
    assert {m["second"] for m in messages if m["event"] == "final"} == {seconds[-1]}


def test_simulate_without_a_running_race_says_so(aws):
    race_class = RaceClassFactory()
    with pytest.raises(CommandError, match="no race running"):
        call_command("simulate", "--class", str(race_class.pk), "--no-progress")


def test_simulate_never_rides_as_a_racer_linked_to_a_user(aws, settings, django_user_model):
    resources = bootstrap(None, load_local_settings())
    settings.ALLEYCAT_STREAM = resources.stream_name
    race_class = RaceClassFactory()
    now = timezone.now()
    RaceFactory(race_class=race_class, starts_at=now - timedelta(seconds=5), ends_at=now + timedelta(minutes=4))
    rider = django_user_model.objects.create_user("rider", password="pw-for-tests")
    RacerFactory(racer_id=1, name="Real Rider", user=rider)
    RacerFactory(racer_id=2, name="Grace Hopper")

    call_command(
        "simulate", "--racers", "2", "--class", str(race_class.pk), "--seconds", "1", "--speed", "20", "--no-progress"
    )

    racer_ids = {m["racerId"] for m in read_stream(resources.stream_name)}
    assert 1 not in racer_ids
    assert 2 in racer_ids and len(racer_ids) == 2


def test_demo_simulator_rides_the_seeded_racers_first_then_distinct_generated_ones():
    call_command("seed_demo")
    Racer.objects.create(racer_id=SYNTHETIC_RACER_BASE, name="Registered Late")  # an id in the generated range
    per_class = [_racer_pairs(24, offset=index, stride=6, synthetic_base=SYNTHETIC_RACER_BASE) for index in range(6)]
    ridden = [racer_id for pairs in per_class for racer_id, _name in pairs]
    assert sorted(ridden) == list(range(1, 145))  # 144 demo seats, all seeded Racer rows
    extra = _racer_pairs(160, synthetic_base=SYNTHETIC_RACER_BASE)
    registered = set(Racer.objects.values_list("racer_id", flat=True))
    generated = [racer_id for racer_id, _name in extra if racer_id not in registered]
    assert len(generated) == 160 - 151 and min(generated) > SYNTHETIC_RACER_BASE  # 100000 is someone's id
    all_names = [name for _racer_id, name in extra]
    assert len(set(all_names)) == len(all_names) and not any(c.isdigit() for n in all_names for c in n)
