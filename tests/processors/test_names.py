"""Demo and simulator names: plausible, distinct, no ids, the same on every run."""

import re

from processors.local.names import distinct_names, racer_name
from processors.local.simulator import profiles


def test_names_are_repeatable_and_carry_no_ids():
    assert racer_name(7) == racer_name(7)
    names = distinct_names(range(1, 2001))
    assert names == distinct_names(range(1, 2001))
    for racer_id, name in names.items():
        assert not re.search(r"\d", name), name
        assert len(name.split()) >= 2 and len(name) <= 64
        assert str(racer_id) not in name


def test_names_are_distinct_among_themselves_and_from_taken_ones():
    first = racer_name(1)
    names = distinct_names(range(1, 3001), taken=[first.upper()])
    assert len({name.casefold() for name in names.values()}) == 3000
    assert names[1].casefold() != first.casefold()  # taken (ignoring case): drawn again


def test_generated_profile_names_never_repeat_a_given_name():
    given = racer_name(5)
    racers = profiles([(1, given), *((racer_id, None) for racer_id in range(2, 400))])
    assert racers[0].name == given
    assert len({racer.name for racer in racers}) == len(racers)
