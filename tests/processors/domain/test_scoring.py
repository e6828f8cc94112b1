"""The scoring formula and the personal-best rule (``processors.domain.scoring``). No AWS."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.domain.message import Reading, decode_reading
from processors.domain.scoring import is_better_best, output_of, units_to_score
from tests.processors.factories import message


class TestOutput:
    @pytest.mark.parametrize(
        ("cadence", "resistance"),
        [(0, 0), (250, 100), (80, 50), (87.3, 42.1), (91.25, 33.333)],
    )
    def test_output_is_the_rounded_formula(self, cadence: float, resistance: float) -> None:
        expected = round(((cadence + 35) * (resistance + 65)) / 100, 4)
        assert output_of(cadence, resistance) == expected

    def test_integer_fast_path_equals_the_rounded_formula_for_every_integer_input(self) -> None:
        for cadence in range(0, 251):
            body = message(cadence=cadence)
            for resistance in range(0, 101):
                body["resistance"] = resistance
                reading = decode_reading(orjson.dumps(body))
                assert isinstance(reading, Reading)
                assert reading.output == round(((cadence + 35) * (resistance + 65)) / 100, 4)

    @settings(max_examples=3000)
    @given(
        st.floats(min_value=0, max_value=250, allow_nan=False) | st.integers(0, 249).map(lambda x: x + 0.5),
        st.floats(min_value=0, max_value=100, allow_nan=False) | st.integers(0, 100),
    )
    def test_fast_output_equals_the_rounded_formula(self, cadence: float, resistance: float) -> None:
        expected = round(((cadence + 35) * (resistance + 65)) / 100, 4)
        assert output_of(cadence, resistance) == expected
        reading = decode_reading(orjson.dumps(message(cadence=cadence, resistance=resistance)))
        assert isinstance(reading, Reading) and reading.output == expected

    def test_fast_output_on_a_dense_grid_of_decimals(self) -> None:
        for cadence_tenths in range(0, 2501, 7):
            cadence = cadence_tenths / 10
            for resistance_hundredths in range(0, 10001, 37):
                resistance = resistance_hundredths / 100
                assert output_of(cadence, resistance) == round(((cadence + 35) * (resistance + 65)) / 100, 4)

    def test_known_values(self) -> None:
        assert output_of(0, 0) == 22.75
        assert output_of(250, 100) == 470.25
        assert output_of(87.3, 42.1) == 130.9833


class TestPersonalBestAndUnits:
    def test_personal_best_only_if_strictly_greater(self) -> None:
        assert is_better_best(10.0, None)
        assert is_better_best(10.5, 10.0)
        assert not is_better_best(10.0, 10.0)
        assert not is_better_best(9.0, 10.0)

    def test_units_round_trip(self) -> None:
        assert units_to_score(1_234_567) == 123.4567
