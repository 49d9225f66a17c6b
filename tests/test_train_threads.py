"""The training gradient's parallel layout (cext/nep_train.c): atoms of all structures in
fixed blocks, one gradient buffer per block summed in block order. The result must not depend
on the number of threads nor on the schedule, and must equal the per-structure sums."""

from __future__ import annotations

import numpy as np
import pytest

from nepzbl_plugin.errors import EngineError
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import TrainingBatch, linear_functional_gradient, predict

SIZES = dict(n_max=(3, 3), basis=(4, 5), neurons=6)


def rattled_structures(num_types: int, sizes, seed: int):
    """(types, positions, cell) of rattled simple-cubic cells with 3 A spacing, one per
    entry of ``sizes`` (repetitions per direction)."""
    rng = np.random.default_rng(seed)
    out = []
    for reps in sizes:
        grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1)
        positions = 3.0 * grid.reshape(-1, 3) + rng.uniform(-0.25, 0.25, (grid[..., 0].size, 3))
        cell = np.diag(3.0 * np.asarray(reps, dtype=float))
        out.append((rng.integers(0, num_types, len(positions)).astype(np.int32), positions, cell))
    return out


@pytest.fixture(scope="module")
def setup():
    model = random_model(version=4, flags=(2, 1, 0, 0, 0, 0), l_max=4, zbl="universal",
                         seed=21, **SIZES)
    # 7 structures of 8 to 36 atoms: 140 atoms in 18 blocks, most spanning two structures
    sizes = [(2, 2, 2), (3, 2, 2), (2, 2, 3), (3, 3, 2), (2, 3, 2), (3, 3, 4), (2, 2, 2)]
    batch = TrainingBatch.from_structures(rattled_structures(model.num_types, sizes, 3))
    rng = np.random.default_rng(9)
    S, A = batch.num_structures, len(batch.types)
    adjoints = (rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 3, 3)))
    return model, batch, adjoints


def test_thread_counts_agree_and_repeat_bitwise(setup):
    model, batch, (alpha, fa, B) = setup
    results = {}
    for threads in (1, 2, 3):
        runs = [linear_functional_gradient(model, batch, alpha, fa, B, num_threads=threads,
                                           return_predictions=True) for _ in range(3)]
        g, p = runs[0]
        for g_again, p_again in runs[1:]:
            np.testing.assert_array_equal(g_again, g)
            np.testing.assert_array_equal(p_again.forces, p.forces)
            np.testing.assert_array_equal(p_again.energy, p.energy)
            np.testing.assert_array_equal(p_again.virial, p.virial)
        results[threads] = runs[0]
    g1, p1 = results[1]
    assert np.abs(g1).max() > 0
    for threads in (2, 3):
        g, p = results[threads]
        np.testing.assert_allclose(g, g1, rtol=1e-12, atol=1e-12 * np.abs(g1).max())
        np.testing.assert_allclose(p.energy, p1.energy, rtol=1e-12)
        np.testing.assert_allclose(p.forces, p1.forces, rtol=0, atol=1e-12)
        np.testing.assert_allclose(p.virial, p1.virial, rtol=0, atol=1e-12)


def test_blocks_spanning_structures_sum_to_the_single_structure_gradients(setup):
    model, batch, (alpha, fa, B) = setup
    g = linear_functional_gradient(model, batch, alpha, fa, B, num_threads=2)
    total = np.zeros_like(g)
    off = batch.atom_offsets
    for s in range(batch.num_structures):
        one = TrainingBatch(batch.types[off[s]:off[s + 1]], batch.positions[off[s]:off[s + 1]],
                            batch.cells[s:s + 1], batch.pbc[s:s + 1], [0, off[s + 1] - off[s]])
        total += linear_functional_gradient(model, one, alpha[s:s + 1], fa[off[s]:off[s + 1]],
                                            B[s:s + 1], num_threads=1)
    np.testing.assert_allclose(g, total, rtol=1e-12, atol=1e-12 * np.abs(g).max())


def test_a_bad_structure_among_good_ones_is_named(setup):
    model, _, _ = setup
    good = rattled_structures(model.num_types, [(2, 2, 2)] * 3, 5)
    types, positions, cell = good[1]
    positions = positions.copy()
    positions[3] = positions[2]
    batch = TrainingBatch.from_structures([good[0], (types, positions, cell), good[2]])
    for threads in (1, 2):
        with pytest.raises(EngineError, match=r"structure 1\b.*same position"):
            predict(model, batch, num_threads=threads)


def test_cache_gives_the_uncached_bits(setup):
    from nepzbl_plugin.train.gradient import TrainingCache

    model, batch, (alpha, fa, B) = setup
    off = batch.atom_offsets

    def subset(indices):
        atoms = np.concatenate([np.arange(off[i], off[i + 1]) for i in indices])
        counts = off[np.add(indices, 1)] - off[indices]
        return TrainingBatch(batch.types[atoms], batch.positions[atoms], batch.cells[indices],
                             batch.pbc[indices], np.concatenate([[0], np.cumsum(counts)]),
                             structure_ids=indices), atoms

    cache = TrainingCache()
    # new ids, kept ids, a repeated id within one call, and the whole set
    for indices in ([4, 1], [1, 2, 6], [3, 3, 0], [0, 1, 2, 3, 4, 5, 6], [5, 1]):
        indices = np.asarray(indices)
        sub, atoms = subset(indices)
        args = (alpha[indices], fa[atoms], B[indices])
        for threads in (1, 2):
            g, p = linear_functional_gradient(model, sub, *args, num_threads=threads,
                                              return_predictions=True)
            gc, pc = linear_functional_gradient(model, sub, *args, num_threads=threads,
                                                return_predictions=True, cache=cache)
            np.testing.assert_array_equal(gc, g)
            np.testing.assert_array_equal(pc.forces, p.forces)
            np.testing.assert_array_equal(pc.energy, p.energy)
            np.testing.assert_array_equal(pc.virial, p.virial)
    # another model with other cutoffs: the kept lists are dropped, not reused
    other = random_model(version=4, flags=(2, 1, 0, 0, 0, 0), l_max=4, zbl="universal",
                         seed=22, cutoffs=(3.6, 3.1), **SIZES)
    sub, _ = subset(np.arange(batch.num_structures))
    np.testing.assert_array_equal(predict(other, sub, cache=TrainingCache()).forces,
                                  predict(other, sub).forces)
    np.testing.assert_array_equal(predict(other, sub, cache=cache).forces,
                                  predict(other, sub).forces)
