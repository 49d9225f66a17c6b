"""The one whole-number check (nepzbl_plugin.checks) that the engine, MD, trainer, AL config,
descriptor map and Model.network share."""

from __future__ import annotations

import numpy as np
import pytest

from nepzbl_plugin.checks import whole_number
from nepzbl_plugin.errors import InputError
from nepzbl_plugin.train.trainer import check_overrides


@pytest.mark.parametrize("value, expected", [
    (3, 3), (-2, -2), (np.int64(5), 5), (3.0, 3), (np.float32(2), 2), (np.array(4.0), 4),
    (2**60 + 1, 2**60 + 1),
])
def test_whole_numbers(value, expected):
    result = whole_number(value)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [True, False, 3.5, float("nan"), float("inf"), "4", None,
                                   [1], np.array([1, 2])])
def test_not_whole_numbers(value):
    assert whole_number(value) is None


def test_without_floats_only_integer_types():
    assert whole_number(np.int32(7), floats=False) == 7
    assert whole_number(3.0, floats=False) is None
    assert whole_number(True, floats=False) is None


def test_train_seed_beyond_float_precision_is_whole():
    """float(2**60 + 1) != 2**60 + 1: the trainer's own test called that seed a fraction."""
    check_overrides({"seed": 2**60 + 1})
    with pytest.raises(InputError, match="seed must be a whole number >= 0, got 2.5"):
        check_overrides({"seed": 2.5})
