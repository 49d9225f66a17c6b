"""GPUMD's loss (nep-reference.md 4.5): a direct transcription on a hand-made batch, the
adjoints against finite differences, and the full parameter gradient on a tiny model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from nepzbl_plugin.train.loss import (
    Labels,
    Loss,
    LossWeights,
    Predictions,
    combine_full_batch,
    virial_six,
)

T = 3  # species 0, 1, 2


def _structure(rng, symbols, with_virial, weight=1.0, energy_weight=1.0):
    n = len(symbols)
    v = rng.normal(size=(3, 3))
    return SimpleNamespace(
        symbols=symbols,
        energy=float(rng.normal() * n),
        forces=rng.normal(size=(n, 3)),
        virial=(v + v.T) if with_virial else None,
        weight=weight,
        energy_weight=energy_weight,
    )


def _example(seed=0):
    rng = np.random.default_rng(seed)
    species = ["A", "B", "C"]
    structures = [
        _structure(rng, ["A", "A", "B"], True, weight=2.0, energy_weight=0.5),
        _structure(rng, ["B", "B"], False, weight=1.0, energy_weight=1.0),
        _structure(rng, ["A", "B", "B", "A"], True, weight=0.5, energy_weight=2.0),
        _structure(rng, ["A"], True, weight=1.5, energy_weight=0.0),
    ]  # no structure has C: its data terms must be 0
    labels = Labels.from_structures(structures, species)
    n_atoms = labels.num_atoms.sum()
    w = rng.normal(size=(len(structures), 3, 3))
    pred = Predictions(
        labels.energy + rng.normal(size=len(structures)),
        labels.forces + rng.normal(size=(n_atoms, 3)),
        w,  # deliberately not symmetric: the loss reads the mean of mirror entries
    )
    return species, structures, labels, pred


def _reference_loss(structures, species, pred, weights, z, ptypes, global_mask):
    """Section 4.5, transcribed literally with loops."""
    lam = weights
    T_ = len(species)
    S = len(structures)
    n = [len(s.symbols) for s in structures]
    eps = [s.energy_weight for s in structures]
    delta = [(pred.energy[k] - s.energy) / n[k] for k, s in enumerate(structures)]
    s_shift = sum(e * d for e, d in zip(eps, delta, strict=True)) / sum(eps)
    forces, start = [], 0
    for k in range(S):
        forces.append(pred.forces[start : start + n[k]])
        start += n[k]
    comps = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0)]
    out = np.zeros((5, T_ + 1))
    for t in range(T_ + 1):
        frames = [k for k in range(S) if t == T_ or species[t] in structures[k].symbols]
        if frames:
            num = sum(structures[k].weight ** 2 * eps[k] * (delta[k] - s_shift) ** 2
                      for k in frames)
            out[2, t] = lam.lambda_e * math.sqrt(num / len(frames))
            num, den = 0.0, 0
            for k in frames:
                st = structures[k]
                for i, sym in enumerate(st.symbols):
                    tau = lam.type_weight[species.index(sym)]
                    fref = np.asarray(st.forces[i])
                    rho = (lam.force_delta / (lam.force_delta + np.linalg.norm(fref))
                           if lam.force_delta > 0 else 1.0)
                    num += st.weight**2 * tau**2 * rho * np.sum((forces[k][i] - fref) ** 2)
                den += n[k]
            out[3, t] = lam.lambda_f * math.sqrt(num / (3 * den))
            vframes = [k for k in frames if structures[k].virial is not None]
            if vframes:
                num = 0.0
                for k in vframes:
                    for c, (a, b) in enumerate(comps):
                        kappa = lam.lambda_shear**2 if c >= 3 else 1.0
                        wp = 0.5 * (pred.virial[k][a, b] + pred.virial[k][b, a]) / n[k]
                        wr = structures[k].virial[a, b] / n[k]
                        num += structures[k].weight ** 2 * kappa * (wp - wr) ** 2
                out[4, t] = lam.lambda_v * math.sqrt(num / (6 * len(vframes)))
        npar = len(z)
        if t == T_:
            sel = [v for v in range(npar) if not global_mask[v]]
            div = npar
        else:
            sel = [v for v in range(npar) if ptypes[v] == t]
            div = npar / T_
        out[0, t] = lam.lambda_1 * sum(abs(z[v]) for v in sel) / div
        out[1, t] = lam.lambda_2 * math.sqrt(sum(z[v] ** 2 for v in sel) / div)
    return out, s_shift


def _weights(**kw):
    base = dict(num_types=T, lambda_e=1.3, lambda_f=0.7, lambda_v=0.4, lambda_shear=2.0,
                lambda_1=0.05, lambda_2=0.02, force_delta=0.8,
                type_weight=np.array([1.0, 2.0, 0.5]))
    base.update(kw)
    return LossWeights(**base)


def _params(seed=1):
    rng = np.random.default_rng(seed)
    ptypes = np.array([0] * 5 + [1] * 5 + [2] * 4 + [3] + [0, 1, 2] * 2)
    z = rng.normal(size=ptypes.size)
    return z, ptypes


@pytest.mark.parametrize("force_delta", [0.0, 0.8])
def test_loss_matches_direct_transcription(force_delta):
    species, structures, labels, pred = _example()
    weights = _weights(force_delta=force_delta)
    z, ptypes = _params()
    loss = Loss(weights, ptypes)
    value = loss.evaluate(labels, pred, z)
    ref, s_ref = _reference_loss(structures, species, pred, weights, z, ptypes, ptypes == T)
    assert value.shift == pytest.approx(s_ref, rel=1e-13)
    np.testing.assert_allclose(value.l1, ref[0], rtol=1e-13)
    np.testing.assert_allclose(value.l2, ref[1], rtol=1e-13)
    np.testing.assert_allclose(value.energy, ref[2], rtol=1e-13)
    np.testing.assert_allclose(value.force, ref[3], rtol=1e-13)
    np.testing.assert_allclose(value.virial, ref[4], rtol=1e-13)
    np.testing.assert_allclose(value.total, ref.sum(axis=0), rtol=1e-13)
    # species C is in no structure: its data terms are 0, regularisation remains
    assert value.energy[2] == value.force[2] == value.virial[2] == 0.0
    assert value.total[2] == pytest.approx(value.l1[2] + value.l2[2])


def test_reported_rmses_are_unweighted_except_epsilon():
    _, structures, labels, pred = _example()
    loss = Loss(_weights(), _params()[1])
    value = loss.evaluate(labels, pred)
    n = labels.num_atoms
    delta = (pred.energy - labels.energy) / n
    s = np.sum(labels.energy_weight * delta) / labels.energy_weight.sum()
    assert value.rmse_energy == pytest.approx(
        np.sqrt(np.sum(labels.energy_weight * (delta - s) ** 2) / len(n)), rel=1e-13)
    assert value.rmse_force == pytest.approx(
        np.sqrt(np.mean((pred.forces - labels.forces) ** 2)), rel=1e-13)
    has = labels.has_virial
    vd = (virial_six(pred.virial) - labels.virial)[has] / n[has, None]
    assert value.rmse_virial == pytest.approx(np.sqrt(np.mean(vd**2)), rel=1e-13)
    # the test-set form has no shift
    no_shift = loss.evaluate(labels, pred, use_shift=False)
    assert no_shift.shift == 0.0
    assert no_shift.rmse_energy == pytest.approx(
        np.sqrt(np.sum(labels.energy_weight * delta**2) / len(n)), rel=1e-13)


def test_energy_loss_is_invariant_to_a_per_atom_offset():
    _, _, labels, pred = _example()
    loss = Loss(_weights(), _params()[1])
    moved = Predictions(pred.energy + 0.37 * labels.num_atoms, pred.forces, pred.virial)
    np.testing.assert_allclose(loss.evaluate(labels, moved).energy,
                               loss.evaluate(labels, pred).energy, rtol=1e-12)


def test_adjoints_match_finite_differences():
    _, _, labels, pred = _example()
    z, ptypes = _params()
    loss = Loss(_weights(), ptypes)
    adj = loss.adjoints(labels, pred, z)

    def value(p, zz=z):
        return loss.evaluate(labels, p, zz).value

    h = 1e-6
    for k in range(labels.num_structures):
        up, dn = (Predictions(pred.energy.copy(), pred.forces, pred.virial) for _ in range(2))
        up.energy[k] += h
        dn.energy[k] -= h
        assert adj.energy[k] == pytest.approx((value(up) - value(dn)) / (2 * h), rel=1e-6)
        for a in range(3):
            for b in range(3):
                up = Predictions(pred.energy, pred.forces, pred.virial.copy())
                dn = Predictions(pred.energy, pred.forces, pred.virial.copy())
                up.virial[k, a, b] += h
                dn.virial[k, a, b] -= h
                fd = (value(up) - value(dn)) / (2 * h)
                assert adj.virial[k, a, b] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    for i in range(labels.forces.shape[0]):
        for a in range(3):
            up = Predictions(pred.energy, pred.forces.copy(), pred.virial)
            dn = Predictions(pred.energy, pred.forces.copy(), pred.virial)
            up.forces[i, a] += h
            dn.forces[i, a] -= h
            fd = (value(up) - value(dn)) / (2 * h)
            assert adj.forces[i, a] == pytest.approx(fd, rel=1e-6, abs=1e-10)
    for v in range(z.size):
        zu, zd = z.copy(), z.copy()
        zu[v] += h
        zd[v] -= h
        fd = (value(pred, zu) - value(pred, zd)) / (2 * h)
        assert adj.regularisation[v] == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_full_batch_combination_is_rms_over_batches():
    _, _, labels, pred = _example()
    loss = Loss(_weights(), _params()[1])
    z = _params()[0]
    a = loss.evaluate(labels.subset([0, 1]), Predictions(pred.energy[:2], pred.forces[:5],
                                                         pred.virial[:2]), z)
    b = loss.evaluate(labels.subset([2, 3]), Predictions(pred.energy[2:], pred.forces[5:],
                                                         pred.virial[2:]), z)
    both = combine_full_batch([a, b])
    np.testing.assert_allclose(both.force, np.sqrt((a.force**2 + b.force**2) / 2))
    np.testing.assert_allclose(both.total, a.l1 + a.l2 + both.energy + both.force + both.virial)


def test_labels_reject_bad_input():
    rng = np.random.default_rng(0)
    st = _structure(rng, ["A", "D"], False)
    with pytest.raises(ValueError, match="not in the model"):
        Labels.from_structures([st], ["A", "B"])
    st = _structure(rng, ["A"], False)
    st.forces = None
    with pytest.raises(ValueError, match="no forces"):
        Labels.from_structures([st], ["A"])


@pytest.mark.parametrize("force_delta", [0.0, 0.8])
def test_c_loss_matches_numpy(force_delta):
    """The C loss (cext/nep_train_loss.h: the pieces the GPU sums too, and the CPU trainer's
    loss) against this module's numpy loss: every term for every type, the shift, the RMSEs
    and every adjoint, on full and partial batches in any order; a species no structure holds,
    a zero energy weight, structures without virial and asymmetric virials included."""
    from nepzbl_plugin import _core
    from nepzbl_plugin.train.loss import LossValue, c_loss_arguments

    species, structures, labels, pred = _example()
    z, ptypes = _params()
    weights = _weights(force_delta=force_delta)
    global_mask = ptypes == T
    loss = Loss(weights, ptypes, global_mask)
    c_loss = _core.LossSet(**c_loss_arguments(labels, loss))
    for idx in ([0, 1, 2, 3], [2, 0], [3]):
        sub = labels.subset(idx)
        atoms = np.concatenate([np.arange(labels.offsets[s], labels.offsets[s + 1]) for s in idx])
        p = Predictions(pred.energy[idx], pred.forces[atoms], pred.virial[idx])
        want, adj = loss.evaluate(sub, p, z), loss.adjoints(sub, p, z)
        record, alpha, fadj, vadj, reg = c_loss.evaluate(
            np.array(idx, dtype=np.intc), p.energy, np.ascontiguousarray(p.forces),
            np.ascontiguousarray(p.virial), z)
        got = LossValue.from_record(record, T)
        for name in ("total", "l1", "l2", "energy", "force", "virial"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-12,
                                       atol=1e-15, err_msg=f"{idx} {name}")
        for name in ("shift", "rmse_energy", "rmse_force", "rmse_virial"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-15)
        for mine, theirs in ((alpha, adj.energy), (fadj, adj.forces), (vadj, adj.virial),
                             (reg, adj.regularisation)):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-15)
    # a NaN label shows in the loss (it does not vanish into a zero term)
    bad = Labels.from_structures(structures, species)
    bad.energy[1] = np.nan
    c_bad = _core.LossSet(**c_loss_arguments(bad, loss))
    record = c_bad.evaluate(np.arange(4, dtype=np.intc), pred.energy, pred.forces,
                            np.ascontiguousarray(pred.virial), z, False)[0]
    assert not LossValue.from_record(record, T).is_finite()
    with pytest.raises(ValueError, match="out of range"):
        c_loss.evaluate(np.array([7], dtype=np.intc), pred.energy[:1], pred.forces[:1],
                        np.ascontiguousarray(pred.virial[:1]), z)
