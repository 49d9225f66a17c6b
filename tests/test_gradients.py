"""Exact training gradients (cext/nep_train.c via nepzbl_plugin.train.gradient).

The analytic gradient of a random linear functional sum alpha E + sum a.F + sum B:W must
equal central finite differences of the same functional, for every parameter group and every
model variant; the forward pass of the gradient code must equal calorine's CPUNEP.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase import Atoms

from nepzbl_plugin.errors import EngineError
from nepzbl_plugin.testing import random_model
from nepzbl_plugin.train.gradient import (
    TrainingBatch,
    linear_functional_gradient,
    predict,
)

# (id, random_model keyword arguments, structure kind)
VARIANTS = [
    ("nep3-3body", dict(version=3, flags=(0, 0, 0, 0, 0, 0), l_max=4), "bulk"),
    ("nep4-q222-q1111-universal",
     dict(version=4, flags=(2, 1, 0, 0, 0, 0), l_max=4, zbl="universal"), "bulk"),
    ("nep5-q112-typewise", dict(version=5, flags=(0, 0, 1, 0, 0, 0), l_max=2, zbl="typewise"),
     "bulk"),
    ("nep4-q123-flexible-3species-pertype",
     dict(version=4, flags=(0, 0, 0, 1, 0, 0), l_max=3, zbl="flexible",
          types=("Li", "La", "O"), cutoffs=([4.6, 5.0, 4.2], [3.6, 4.0, 3.3])), "bulk"),
    ("nep5-q233", dict(version=5, flags=(0, 0, 0, 0, 1, 0), l_max=3), "bulk"),
    ("nep4-q134-3species",
     dict(version=4, flags=(0, 0, 0, 0, 0, 1), l_max=4, types=("Li", "Zr", "O"),
          zbl="universal"), "bulk"),
    ("nep4-small-triclinic-cell",
     dict(version=4, flags=(2, 0, 0, 0, 0, 0), l_max=4, zbl="typewise"), "small"),
    ("nep5-all-flags-lmax8",
     dict(version=5, flags=(2, 1, 1, 1, 1, 1), l_max=8, zbl="flexible",
          cutoffs=([4.5, 4.0], [3.5, 3.2])), "bulk"),
]

SIZES = dict(n_max=(3, 3), basis=(4, 5), neurons=6)


def structures(kind: str, num_types: int, seed: int) -> list[Atoms]:
    """Two rattled triclinic periodic structures (8-24 atoms) or two small cells."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(2):
        if kind == "small":
            # 2-3 atoms in a ~2.8 A triclinic cell: many periodic images, self-images included
            n = 2 + k
            cell = 2.8 * np.eye(3) + rng.uniform(-0.4, 0.4, (3, 3))
        else:
            reps = (2, 2, 2) if k == 0 else (3, 2, 2)
            n = 1 * int(np.prod(reps))
            base = np.diag([3.0 * reps[0], 3.0 * reps[1], 3.0 * reps[2]])
            cell = base @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3)))
            n *= 2 if k == 0 else 1
        frac = rng.uniform(0, 1, (n, 3))
        atoms = Atoms(numbers=[1] * n, scaled_positions=frac, cell=cell, pbc=True)
        # push atoms apart: a few steps of soft repulsion keep distances physical (> 1.3 A)
        for _ in range(200):
            d = atoms.get_all_distances(mic=True)
            np.fill_diagonal(d, 10.0)
            if d.min() > 1.3:
                break
            i, j = np.unravel_index(np.argmin(d), d.shape)
            vec = atoms.get_distance(i, j, mic=True, vector=True)
            atoms.positions[j] += 0.3 * vec / np.linalg.norm(vec)
        atoms.arrays["type"] = rng.integers(0, num_types, n).astype(np.int32)
        out.append(atoms)
    return out


def batch_of(atoms_list) -> TrainingBatch:
    return TrainingBatch.from_structures(
        [(a.arrays["type"], a.positions, a.cell.array) for a in atoms_list])


def functional(model, batch, alpha, fa, B, z):
    p = predict(model, batch, parameters=z)
    return (alpha * p.energy).sum() + (fa * p.forces).sum() + (B * p.virial).sum()


def relative_errors(model, batch, rng, per_group: int = 24):
    S, A = batch.num_structures, int(batch.atom_offsets[-1])
    alpha = rng.normal(size=S)
    fa = rng.normal(size=(A, 3))
    B = rng.normal(size=(S, 3, 3))  # not symmetric: checks the B^T convention too
    grad = linear_functional_gradient(model, batch, alpha, fa, B)
    z0 = model.parameters.copy()
    errors = {}
    for name, sl in model.parameter_groups().items():
        idx = np.arange(sl.start, sl.stop)
        if idx.size > per_group:
            idx = np.sort(rng.choice(idx, per_group, replace=False))
        fd = np.empty(idx.size)
        for n, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(z0[k]))
            zp, zm = z0.copy(), z0.copy()
            zp[k] += h
            zm[k] -= h
            fd[n] = (functional(model, batch, alpha, fa, B, zp)
                     - functional(model, batch, alpha, fa, B, zm)) / (2 * h)
        scale = np.abs(fd).max()
        assert scale > 0, f"{name}: finite differences all zero"
        errors[name] = float(np.abs(grad[idx] - fd).max() / scale)
    return errors


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_gradient_matches_finite_differences(variant):
    name, kwargs, kind = variant
    kwargs = {**SIZES, **kwargs}
    kwargs.setdefault("cutoffs", (4.5, 3.5))
    model = random_model(seed=len(name), **kwargs)
    batch = batch_of(structures(kind, model.num_types, seed=len(name)))
    errors = relative_errors(model, batch, np.random.default_rng(7))
    assert len(errors) == len(model.parameter_groups())
    worst = max(errors.values())
    assert worst < 1e-6, errors


# flags that NEP_CPU evaluates correctly (it drops q112..q134 when q222 is on)
CALORINE_VARIANTS = [v for v in VARIANTS if not (v[1]["flags"][0] and any(v[1]["flags"][2:]))]


def as_nep4(model):
    """The nep4 model with the same forces as a nep3/nep5 model, and the energy offset per type
    (calorine evaluates nep4 only): nep3's shared block is copied to every species; nep5's
    per-species output bias beta_t is dropped and returned, to be subtracted per atom."""
    T, D, N1 = model.num_types, model.descriptor_dim, model.n_neurons
    size4 = (D + 2) * N1
    blocks, beta = [], np.zeros(T)
    for t in range(T):
        net = model.network(0 if model.version == 3 else t)
        blocks.append(np.concatenate([net["w0"].ravel(), net["b0"], net["w1"]]))
        if model.version == 5:
            beta[t] = net["beta"][0]
    nn = model.num_network_parameters
    params = np.concatenate(blocks + [model.parameters[nn - 1:]])
    assert params.size == T * size4 + 1 + model.num_descriptor_parameters
    return dataclasses.replace(model.copy(), version=4, parameters=params), beta


@pytest.mark.parametrize("variant", CALORINE_VARIANTS, ids=[v[0] for v in CALORINE_VARIANTS])
def test_forward_matches_calorine(variant, tmp_path):
    calorine = pytest.importorskip("calorine.calculators")
    name, kwargs, kind = variant
    kwargs = {**SIZES, **kwargs}
    kwargs.setdefault("cutoffs", (4.5, 3.5))
    model = random_model(seed=len(name), **kwargs)
    path = tmp_path / "nep.txt"
    nep4, beta = as_nep4(model)
    nep4.write(path, precision="full")
    atoms_list = structures(kind, model.num_types, seed=len(name))
    batch = batch_of(atoms_list)
    rng = np.random.default_rng(3)
    adjoints = (rng.normal(size=2), rng.normal(size=(len(batch.types), 3)),
                rng.normal(size=(2, 3, 3)))
    grad, pred = linear_functional_gradient(model, batch, *adjoints, return_predictions=True)
    assert np.all(np.isfinite(grad))
    # the gradient alone (the trainer's call, which predicted first) forms none of the forces'
    # terms and skips the radial-only pairs in pass 2: the same bits
    np.testing.assert_array_equal(linear_functional_gradient(model, batch, *adjoints), grad)
    # the predictions alone skip what only the gradient reads: the same bits
    only = predict(model, batch)
    np.testing.assert_array_equal(only.energy, pred.energy)
    np.testing.assert_array_equal(only.forces, pred.forces)
    np.testing.assert_array_equal(only.virial, pred.virial)
    for s, atoms in enumerate(atoms_list):
        atoms = atoms.copy()
        atoms.set_chemical_symbols([model.types[t] for t in atoms.arrays["type"]])
        atoms.calc = calorine.CPUNEP(str(path))
        energy = atoms.get_potential_energy() - beta[atoms.arrays["type"]].sum()
        forces = atoms.get_forces()
        virial = -atoms.get_stress(voigt=False) * atoms.get_volume()
        lo, hi = batch.atom_offsets[s], batch.atom_offsets[s + 1]
        assert abs(pred.energy[s] - energy) <= 1e-10 * max(1.0, abs(energy))
        np.testing.assert_allclose(pred.forces[lo:hi], forces, rtol=0, atol=1e-9)
        np.testing.assert_allclose(pred.virial[s], virial, rtol=0, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_forward_matches_engine(variant):
    from nepzbl_plugin.engine import Evaluator, System

    name, kwargs, kind = variant
    kwargs = {**SIZES, **kwargs}
    kwargs.setdefault("cutoffs", (4.5, 3.5))
    model = random_model(seed=len(name), **kwargs)
    systems = [System(a.arrays["type"], a.positions, a.cell.array)
               for a in structures(kind, model.num_types, seed=len(name))]
    pred = predict(model, TrainingBatch.from_structures(systems))
    offsets = np.cumsum([0] + [len(s) for s in systems])
    for s, result in enumerate(Evaluator(model).evaluate_many(systems)):
        assert abs(pred.energy[s] - result["energy"]) <= 1e-10 * max(1.0, abs(result["energy"]))
        np.testing.assert_allclose(pred.forces[offsets[s]:offsets[s + 1]], result["forces"],
                                   rtol=0, atol=1e-9)
        np.testing.assert_allclose(pred.virial[s], result["virial"], rtol=0, atol=1e-9)


def test_threads_and_batching_agree():
    model = random_model(version=4, zbl="universal", seed=3, **SIZES)
    atoms_list = structures("bulk", 2, 11) + structures("small", 2, 12) + structures("bulk", 2, 13)
    batch = batch_of(atoms_list)
    rng = np.random.default_rng(5)
    S, A = batch.num_structures, len(batch.types)
    alpha, fa, B = rng.normal(size=S), rng.normal(size=(A, 3)), rng.normal(size=(S, 3, 3))
    g1, p1 = linear_functional_gradient(model, batch, alpha, fa, B, num_threads=1,
                                        return_predictions=True)
    g2, p2 = linear_functional_gradient(model, batch, alpha, fa, B, num_threads=2,
                                        return_predictions=True)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-12 * np.abs(g1).max())
    np.testing.assert_array_equal(p1.forces, p2.forces)
    # the batch gradient is the sum of the single-structure gradients
    total = np.zeros_like(g1)
    for s, atoms in enumerate(atoms_list):
        lo, hi = batch.atom_offsets[s], batch.atom_offsets[s + 1]
        total += linear_functional_gradient(model, batch_of([atoms]), alpha[s:s + 1],
                                            fa[lo:hi], B[s:s + 1])
    np.testing.assert_allclose(total, g1, rtol=1e-12, atol=1e-12 * np.abs(g1).max())
    # per-structure force adjoints as a list, virial adjoints as (S, 9)
    g3 = linear_functional_gradient(
        model, batch, alpha, [fa[batch.atom_offsets[s]:batch.atom_offsets[s + 1]]
                              for s in range(S)], B.reshape(S, 9), num_threads=1)
    np.testing.assert_array_equal(g3, g1)


def test_zero_adjoints_give_zero_gradient():
    model = random_model(version=5, seed=4, **SIZES)
    batch = batch_of(structures("bulk", 2, 4))
    assert not np.any(linear_functional_gradient(model, batch))


def test_bad_input_raises():
    model = random_model(version=4, seed=5, **SIZES)
    cell = 5.0 * np.eye(3)
    with pytest.raises(EngineError, match="same position"):
        predict(model, TrainingBatch.from_structures([([0, 1], [[1, 1, 1], [1, 1, 1]], cell)]))
    with pytest.raises(EngineError, match="type"):
        predict(model, TrainingBatch.from_structures([([0, 7], [[1, 1, 1], [2, 2, 2]], cell)]))
    with pytest.raises(EngineError, match="NaN"):
        predict(model, TrainingBatch.from_structures([([0, 1], [[1, 1, np.nan], [2, 2, 2]],
                                                      cell)]))
    with pytest.raises(EngineError, match="cell"):
        predict(model, TrainingBatch.from_structures([([0], [[1, 1, 1]], np.zeros((3, 3)))]))
    batch = TrainingBatch.from_structures([([0, 1], [[1, 1, 1], [2, 2, 2]], cell)])
    # a NaN parameter is refused, not propagated into the gradient
    bad = model.parameters.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        predict(model, batch, parameters=bad)
    with pytest.raises(ValueError, match="alpha"):
        linear_functional_gradient(model, batch, alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        linear_functional_gradient(model, batch, alpha=[np.nan])
    with pytest.raises(ValueError, match="parameters"):
        predict(model, batch, parameters=np.zeros(3))
