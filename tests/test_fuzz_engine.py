"""Fuzzing the engine entry points: any positions, cell, periodicity, types and atom count give
either finite results of the right shapes or one EngineError / ValueError; never a crash, an
out-of-bounds access or a silent NaN (issue 11: huge open-boundary positions segfaulted).

Seeded and small: the whole file runs in a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from nepzbl_plugin.engine import Evaluator, System
from nepzbl_plugin.errors import EngineError
from nepzbl_plugin.testing import random_model

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_EVALUATOR = Evaluator(random_model(types=("Te", "Pb"), zbl="universal", n_max=(2, 2),
                                    basis=(2, 2), neurons=3, l_max=2, cutoffs=(4.0, 3.0), seed=5),
                       num_threads=1)

# coordinates that have broken engines: huge, tiny, signed zeros, subnormals, non-finite
_SPECIAL = st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e-8, 0.5, 2.9, 3.0, 4.0, 1e9, 1e10,
                            1.0000001e10, 1e11, 1e154, 1e308, -1e308, 1.7976931348623157e308,
                            np.inf, -np.inf, np.nan])
_COORDINATE = st.one_of(st.floats(-20, 20), _SPECIAL,
                        st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def _structures(draw):
    n = draw(st.integers(0, 6))
    positions = np.array(draw(st.lists(_COORDINATE, min_size=3 * n, max_size=3 * n)),
                         dtype=np.float64).reshape(n, 3)
    if draw(st.booleans()):  # mostly ordinary cells, sometimes anything
        cell = np.diag(draw(st.lists(st.floats(0.5, 30), min_size=3, max_size=3)))
        cell = cell + np.array(draw(st.lists(st.floats(-3, 3), min_size=9, max_size=9))
                               ).reshape(3, 3) * draw(st.sampled_from([0.0, 1.0]))
    else:
        cell = np.array(draw(st.lists(_COORDINATE, min_size=9, max_size=9))).reshape(3, 3)
    pbc = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    types = np.array(draw(st.lists(st.one_of(st.integers(0, 1), st.integers(-2**31, 2**31 - 1)),
                                   min_size=n, max_size=n)), dtype=np.int64)
    return types, positions, cell, pbc


_PROPERTIES = st.lists(st.sampled_from(["energy", "energies", "forces", "virial", "virials",
                                        "descriptors", "latent", "zbl"]),
                       min_size=1, max_size=4, unique=True)


def _check(out, n, properties):
    D, H = _EVALUATOR.model.descriptor_dim, _EVALUATOR.model.n_neurons
    shapes = {"energies": (n,), "forces": (n, 3), "virial": (3, 3), "virials": (n, 3, 3),
              "descriptors": (n, D), "latent": (n, H), "forces_zbl": (n, 3)}
    for name, value in out.items():
        assert np.all(np.isfinite(value)), name
        if name in shapes:
            assert np.shape(value) == shapes[name], name
    for name in properties:
        assert name == "zbl" or name in out


@seed(11)
@FUZZ
@given(_structures(), _PROPERTIES)
def test_evaluate_any_structure(structure, properties):
    types, positions, cell, pbc = structure
    try:
        system = System(types.astype(np.intc), positions, cell, pbc)
        out = _EVALUATOR.evaluate(system, properties)
    except (EngineError, ValueError):
        return
    _check(out, len(types), properties)


@seed(12)
@FUZZ
@given(st.lists(_structures(), min_size=1, max_size=3), _PROPERTIES)
def test_evaluate_many_structures(structures, properties):
    try:
        systems = [System(t.astype(np.intc), p, c, b) for t, p, c, b in structures]
        results = _EVALUATOR.evaluate_many(systems, properties)
    except (EngineError, ValueError):
        return
    for (types, *_), out in zip(structures, results, strict=True):
        _check(out, len(types), properties)


@seed(13)
@FUZZ
@given(_structures())
def test_core_entry_point_without_python_checks(structure):
    """The C engine's own checks: types outside the model and bad coordinates come back as a
    status, whatever the Python layer lets through."""
    types, positions, cell, pbc = structure
    n = len(types)
    arrays = {"energy": np.zeros(1), "forces": np.zeros((n, 3)), "virials": np.zeros((n, 3, 3)),
              "descriptors": np.zeros((n, _EVALUATOR.model.descriptor_dim))}
    clipped = np.clip(types, -2**31, 2**31 - 1).astype(np.intc)
    try:
        _EVALUATOR._core.evaluate(clipped, positions, np.ascontiguousarray(cell), pbc, arrays, 1)
    except EngineError:
        return
    assert np.all((clipped >= 0) & (clipped < 2))
    assert np.all(np.abs(positions) <= 1e10) and np.all(np.abs(cell) <= 1e10)


@pytest.mark.parametrize("n, wanted", [(0, 0), (1, 1), (2, 2)])
def test_counts_mismatch_are_value_errors(n, wanted):
    with pytest.raises(ValueError):
        System(np.zeros(n + 1, dtype=np.intc), np.zeros((n, 3)), np.eye(3))
    with pytest.raises(ValueError):
        _EVALUATOR._core.evaluate(np.zeros(wanted, dtype=np.intc), np.zeros((wanted + 1, 3)),
                                  np.eye(3), (True,) * 3, {"energy": np.zeros(1)}, 1)
