"""The server's JSON path follows the datetime contract of the graph: ISO-8601 strings (naive = UTC,
offsets converted) or epoch seconds, as float64 seconds since 1970-01-01 UTC; anything else is a 422."""
from __future__ import annotations

import math

import pytest

from automl.serving.inputs import RequestError, _datetimes


def test_iso_strings_offsets_epoch_numbers_and_missing_values():
    out = _datetimes("when", ["2024-05-01T13:45:00", "2024-05-01T15:45:00+02:00", 1714571100, None, ""])
    assert out[0] == out[1] == out[2] == 1714571100.0
    assert math.isnan(out[3]) and math.isnan(out[4])


@pytest.mark.parametrize("bad", ["not a date", True, [2024, 5, 1]])
def test_a_value_that_is_not_a_date_is_a_422_naming_the_column(bad):
    with pytest.raises(RequestError) as e:
        _datetimes("when", ["2024-05-01", bad])
    assert e.value.status == 422 and "when" in str(e.value)
