"""GPUMD's training objective (``nep-reference.md`` section 4.5) and its adjoints.

The loss of a candidate parameter vector z on a batch of structures is, for every "type" t
(the species 0..T-1 and the global type T),

    L(t) = L1(t) + L2(t) + L_e(t) + L_f(t) + L_v(t)

with the energy term shifted by the ε-weighted mean per-atom energy error s of the whole batch,
the force term weighted by w², type_weight τ² and the force_delta factor ρ, and the virial term
per atom with λ_shear on the shear components. Everything here is plain numpy on predicted
energies, forces and virials: the model (NEP + ZBL) is evaluated elsewhere, so the network
learns the residual of the labels with respect to ZBL exactly as GPUMD's trainer does.

:meth:`Loss.adjoints` gives dL(T)/dE_s, dL(T)/dF_si and dL(T)/dW_s (the chain rule through the
shift and the square roots); :mod:`nepzbl_plugin.train.gradient` turns them into dL/dz.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

__all__ = [
    "LossWeights",
    "Labels",
    "Predictions",
    "LossValue",
    "Loss",
    "VIRIAL_COMPONENTS",
    "virial_six",
]

# GPUMD's order of the six virial components, and their (row, column) in a 3x3 tensor.
VIRIAL_COMPONENTS = ("xx", "yy", "zz", "xy", "yz", "zx")
_VIRIAL_INDEX = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0))


def virial_six(virial: np.ndarray) -> np.ndarray:
    """(..., 3, 3) virial tensors to GPUMD's six components xx yy zz xy yz zx.

    Off-diagonal components are the mean of the two mirror entries, so a symmetric tensor is
    read exactly and the adjoint of this map splits evenly over both entries.
    """
    v = np.asarray(virial, dtype=np.float64)
    out = np.empty(v.shape[:-2] + (6,))
    for c, (a, b) in enumerate(_VIRIAL_INDEX):
        out[..., c] = v[..., a, b] if a == b else 0.5 * (v[..., a, b] + v[..., b, a])
    return out


def _six_to_tensor_adjoint(adj6: np.ndarray) -> np.ndarray:
    """Adjoint of :func:`virial_six`: (..., 6) -> (..., 3, 3)."""
    out = np.zeros(adj6.shape[:-1] + (3, 3))
    for c, (a, b) in enumerate(_VIRIAL_INDEX):
        if a == b:
            out[..., a, a] += adj6[..., c]
        else:
            out[..., a, b] += 0.5 * adj6[..., c]
            out[..., b, a] += 0.5 * adj6[..., c]
    return out


@dataclass
class LossWeights:
    """The λ's and per-atom weights of GPUMD's loss (nep.in keywords of the same names).

    ``lambda_1``/``lambda_2`` of ``None`` mean GPUMD's default √(N_par·1e-6/T), resolved by
    :meth:`resolved` once the number of parameters is known.
    """

    num_types: int
    lambda_e: float = 1.0
    lambda_f: float = 1.0
    lambda_v: float = 0.1
    lambda_shear: float = 1.0
    lambda_1: float | None = None
    lambda_2: float | None = None
    force_delta: float = 0.0
    type_weight: np.ndarray | None = None

    def __post_init__(self):
        if self.type_weight is None:
            self.type_weight = np.ones(self.num_types)
        self.type_weight = np.asarray(self.type_weight, dtype=np.float64).reshape(-1)
        if self.type_weight.shape != (self.num_types,):
            raise ValueError(
                f"type_weight needs {self.num_types} values, got {self.type_weight.size}"
            )

    def resolved(self, num_parameters: int) -> LossWeights:
        """A copy with GPUMD's default regularisation weights filled in."""
        default = float(np.sqrt(num_parameters * 1e-6 / self.num_types))
        return LossWeights(
            num_types=self.num_types,
            lambda_e=self.lambda_e,
            lambda_f=self.lambda_f,
            lambda_v=self.lambda_v,
            lambda_shear=self.lambda_shear,
            lambda_1=default if self.lambda_1 is None else float(self.lambda_1),
            lambda_2=default if self.lambda_2 is None else float(self.lambda_2),
            force_delta=self.force_delta,
            type_weight=self.type_weight.copy(),
        )


def _label(value, where: str, name: str, shape: tuple):
    """A label as float64 of ``shape`` (a float for ``()``), all finite, or one InputError:
    a NaN label made the loss NaN and the run stop as 'diverged, try a smaller learning_rate'."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} must be numbers, got {value!r:.60}") from None
    if array.shape != shape and array.size == int(np.prod(shape)):
        array = array.reshape(shape)  # (3N,) forces or (9,) virials, as before
    if array.shape != shape:
        expected = " x ".join(map(str, shape)) if shape else "one number"
        raise InputError(f"{where}: {name} has shape {array.shape}, expected {expected}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{where}: {name} holds NaN or infinite values")
    return float(array) if shape == () else array


@dataclass
class Labels:
    """Reference data of a set of structures, as flat arrays (atoms concatenated).

    Build one with :meth:`from_structures`; :meth:`subset` picks a batch.
    """

    num_types: int
    num_atoms: np.ndarray  # (S,) int
    atom_types: np.ndarray  # (A,) int, 0..T-1
    energy: np.ndarray  # (S,) total reference energy, eV
    forces: np.ndarray  # (A, 3) eV/Å
    virial: np.ndarray  # (S, 6) total reference virial, eV (xx yy zz xy yz zx); 0 where absent
    has_virial: np.ndarray  # (S,) bool
    weight: np.ndarray  # (S,) structure weight w
    energy_weight: np.ndarray  # (S,) ε
    offsets: np.ndarray = field(init=False)  # (S+1,) first atom of every structure

    def __post_init__(self):
        self.num_atoms = np.asarray(self.num_atoms, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.num_atoms)]).astype(np.int64)
        self.atom_types = np.asarray(self.atom_types, dtype=np.int64)
        self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        self.virial = np.asarray(self.virial, dtype=np.float64).reshape(-1, 6)
        self.has_virial = np.asarray(self.has_virial, dtype=bool)
        self.energy = np.asarray(self.energy, dtype=np.float64)
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.energy_weight = np.asarray(self.energy_weight, dtype=np.float64)

    @classmethod
    def from_structures(cls, structures, species: list[str]) -> Labels:
        """From :class:`~nepzbl_plugin.io.xyz.TrainingStructure` objects (or anything with
        ``symbols``, ``energy``, ``forces``, ``virial``, ``weight``, ``energy_weight``)."""
        index = {s: i for i, s in enumerate(species)}
        num_atoms, types, energy, forces, virial, has_virial, weight, eweight = (
            [], [], [], [], [], [], [], []
        )
        for k, st in enumerate(structures):
            where = f"structure {k}"
            if getattr(st, "source", None):
                where += f" ({st.source})"
            symbols = list(st.symbols)
            missing = sorted(set(symbols) - set(index))
            if missing:
                raise InputError(f"{where}: species {missing} not in the model {species}")
            if not symbols:
                raise InputError(f"{where} has no atoms")
            if st.forces is None:
                raise InputError(f"{where} has no forces; training needs them")
            if st.energy is None:
                raise InputError(f"{where} has no energy; training needs it")
            num_atoms.append(len(symbols))
            types.extend(index[s] for s in symbols)
            energy.append(_label(st.energy, where, "energy", ()))
            forces.append(_label(st.forces, where, "forces", (len(symbols), 3)))
            if getattr(st, "virial", None) is None:
                virial.append(np.zeros(6))
                has_virial.append(False)
            else:
                virial.append(virial_six(_label(st.virial, where, "virial", (3, 3))))
                has_virial.append(True)
            weight.append(float(getattr(st, "weight", 1.0) or 1.0))
            ew = getattr(st, "energy_weight", 1.0)
            eweight.append(1.0 if ew is None else float(ew))
        return cls(
            num_types=len(species),
            num_atoms=np.array(num_atoms),
            atom_types=np.array(types, dtype=np.int64),
            energy=np.array(energy),
            forces=np.concatenate(forces) if forces else np.zeros((0, 3)),
            virial=np.array(virial).reshape(-1, 6),
            has_virial=np.array(has_virial, dtype=bool),
            weight=np.array(weight),
            energy_weight=np.array(eweight),
        )

    @property
    def num_structures(self) -> int:
        return int(self.num_atoms.size)

    def atom_structure(self) -> np.ndarray:
        """(A,) index of the structure of every atom."""
        return np.repeat(np.arange(self.num_structures), self.num_atoms)

    def contains_type(self) -> np.ndarray:
        """(S, T+1) bool: structure s has an atom of type t; column T is all True."""
        out = np.zeros((self.num_structures, self.num_types + 1), dtype=bool)
        out[self.atom_structure(), self.atom_types] = True
        out[:, self.num_types] = True
        return out

    def subset(self, indices) -> Labels:
        """The labels of structures ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64)
        atoms = (
            np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
            if idx.size
            else np.zeros(0, dtype=np.int64)
        )
        return Labels(
            num_types=self.num_types,
            num_atoms=self.num_atoms[idx],
            atom_types=self.atom_types[atoms],
            energy=self.energy[idx],
            forces=self.forces[atoms],
            virial=self.virial[idx],
            has_virial=self.has_virial[idx],
            weight=self.weight[idx],
            energy_weight=self.energy_weight[idx],
        )


@dataclass
class Predictions:
    """Model outputs (NEP + ZBL) for the structures of a :class:`Labels`."""

    energy: np.ndarray  # (S,) total, eV
    forces: np.ndarray  # (A, 3)
    virial: np.ndarray  # (S, 3, 3) total, eV; GPUMD sign (compression positive)

    def __post_init__(self):
        self.energy = np.asarray(self.energy, dtype=np.float64).reshape(-1)
        self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        self.virial = np.asarray(self.virial, dtype=np.float64).reshape(-1, 3, 3)


@dataclass
class LossValue:
    """One evaluation of the loss. Arrays indexed by t = 0..T (T = global)."""

    total: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    energy: np.ndarray
    force: np.ndarray
    virial: np.ndarray
    shift: float  # s, eV/atom
    rmse_energy: float  # unweighted except ε, with the shift, eV/atom
    rmse_force: float  # eV/Å
    rmse_virial: float  # eV/atom (0 when no structure has a virial)

    @property
    def value(self) -> float:
        """L(T), the total loss GPUMD reports and gradient optimisers minimise."""
        return float(self.total[-1])

    @classmethod
    def of_terms(cls, l1, l2, energy, force, virial, **rest) -> LossValue:
        """The value whose total is the sum of its terms, as GPUMD's loss (``rest``: the
        shift and the RMSEs)."""
        return cls(total=l1 + l2 + energy + force + virial, l1=l1, l2=l2, energy=energy,
                   force=force, virial=virial, **rest)

    @classmethod
    def from_record(cls, record: np.ndarray, num_types: int) -> LossValue:
        """From a loss record of the C loss (``cext/nep_train_loss.h``, on the CPU or the
        GPU): six blocks of T + 1 values (L, L1, L2, energy, force, virial), then the shift and
        the three RMSEs."""
        n = num_types + 1
        block = [np.array(record[k * n:(k + 1) * n], dtype=np.float64) for k in range(6)]
        shift, rmse_e, rmse_f, rmse_v = (float(x) for x in record[6 * n:6 * n + 4])
        return cls(total=block[0], l1=block[1], l2=block[2], energy=block[3], force=block[4],
                   virial=block[5], shift=shift, rmse_energy=rmse_e, rmse_force=rmse_f,
                   rmse_virial=rmse_v)

    def is_finite(self) -> bool:
        return bool(np.all(np.isfinite(self.total)))


@dataclass
class Adjoints:
    """dL(T)/d(prediction): α (S,), a (A, 3), B (S, 3, 3); plus the explicit dL/dz of the
    regularisation terms (N_par,)."""

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray
    regularisation: np.ndarray


def _safe_sqrt(x):
    return np.sqrt(np.maximum(x, 0.0))


class Loss:
    """GPUMD's loss for a model with the given parameter types.

    Parameters
    ----------
    weights
        The λ's (:class:`LossWeights`, already :meth:`~LossWeights.resolved`).
    parameter_types
        (N_par,) GPUMD's type of every parameter (``Model.parameter_types()``): species index
        or T for the global shared bias.
    global_mask
        (N_par,) bool, the global parameter(s) excluded from the t = T regularisation;
        defaults to ``parameter_types == T``.
    """

    def __init__(self, weights: LossWeights, parameter_types, global_mask=None):
        self.weights = weights
        if weights.lambda_1 is None or weights.lambda_2 is None:
            raise ValueError("resolve the default λ1/λ2 first (LossWeights.resolved)")
        self.parameter_types = np.asarray(parameter_types, dtype=np.int64)
        self.num_types = weights.num_types
        T = self.num_types
        self.global_mask = (
            self.parameter_types == T if global_mask is None else np.asarray(global_mask, bool)
        )
        self.num_parameters = self.parameter_types.size

    # ---------------------------------------------------------------- regularisation
    def regularisation(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(L1(t), L2(t)) for t = 0..T (section 4.5)."""
        T, n = self.num_types, self.num_parameters
        w = self.weights
        l1, l2 = np.zeros(T + 1), np.zeros(T + 1)
        for t in range(T + 1):
            mask = ~self.global_mask if t == T else self.parameter_types == t
            divisor = n if t == T else n / T
            zt = z[mask]
            l1[t] = w.lambda_1 * np.abs(zt).sum() / divisor
            l2[t] = w.lambda_2 * np.sqrt((zt * zt).sum() / divisor)
        return l1, l2

    def _regularisation_gradient(self, z: np.ndarray) -> np.ndarray:
        n = self.num_parameters
        mask = ~self.global_mask
        g = np.zeros_like(z)
        g[mask] = self.weights.lambda_1 * np.sign(z[mask]) / n
        norm = np.sqrt((z[mask] ** 2).sum() / n)
        if norm > 0:
            g[mask] += self.weights.lambda_2 * z[mask] / (n * norm)
        return g

    # ---------------------------------------------------------------- data terms
    def _per_atom_force_weight(self, labels: Labels) -> np.ndarray:
        """w_n² τ_{t_i}² ρ_i for every atom."""
        w = self.weights
        c = labels.weight[labels.atom_structure()] ** 2 * w.type_weight[labels.atom_types] ** 2
        if w.force_delta > 0:
            c = c * (w.force_delta / (w.force_delta + np.linalg.norm(labels.forces, axis=1)))
        return c

    @staticmethod
    def shift(labels: Labels, predictions: Predictions) -> float:
        """s = Σ ε Δ / Σ ε over all structures (0 if Σ ε ≤ 0), eV/atom."""
        delta = (predictions.energy - labels.energy) / labels.num_atoms
        den = labels.energy_weight.sum()
        return float((labels.energy_weight * delta).sum() / den) if den > 0 else 0.0

    def evaluate(
        self,
        labels: Labels,
        predictions: Predictions,
        z: np.ndarray | None = None,
        *,
        use_shift: bool = True,
    ) -> LossValue:
        """L(t) for t = 0..T and the reported RMSEs on this batch.

        ``use_shift=False`` gives GPUMD's test-set RMSEs (no shift).
        """
        T = self.num_types
        w = self.weights
        S = labels.num_structures
        contains = labels.contains_type()  # (S, T+1)
        n_frames = contains.sum(axis=0)  # (T+1,)

        delta = (predictions.energy - labels.energy) / labels.num_atoms
        s = self.shift(labels, predictions) if use_shift else 0.0
        e_sq = labels.weight**2 * labels.energy_weight * (delta - s) ** 2  # (S,)
        energy = w.lambda_e * _safe_sqrt(
            np.divide(e_sq @ contains, n_frames, out=np.zeros(T + 1), where=n_frames > 0)
        )

        ferr = ((predictions.forces - labels.forces) ** 2).sum(axis=1)  # (A,)
        f_struct = np.bincount(
            labels.atom_structure(), weights=self._per_atom_force_weight(labels) * ferr,
            minlength=S,
        )
        atoms_t = labels.num_atoms.astype(np.float64) @ contains
        force = w.lambda_f * _safe_sqrt(
            np.divide(f_struct @ contains, 3.0 * atoms_t, out=np.zeros(T + 1), where=atoms_t > 0)
        )

        kappa = np.array([1, 1, 1] + [w.lambda_shear**2] * 3, dtype=np.float64)
        vdiff = (virial_six(predictions.virial) - labels.virial) / labels.num_atoms[:, None]
        vdiff[~labels.has_virial] = 0.0
        v_struct = labels.weight**2 * (vdiff**2 @ kappa)
        vir_contains = contains & labels.has_virial[:, None]
        nv = vir_contains.sum(axis=0)
        virial = w.lambda_v * _safe_sqrt(
            np.divide(v_struct @ vir_contains, 6.0 * nv, out=np.zeros(T + 1), where=nv > 0)
        )

        if z is None:
            l1 = l2 = np.zeros(T + 1)
        else:
            l1, l2 = self.regularisation(np.asarray(z, dtype=np.float64))

        n_vir = int(labels.has_virial.sum())
        rmse_v = float(np.sqrt((vdiff**2).sum() / (6 * n_vir))) if n_vir else 0.0
        return LossValue.of_terms(
            l1, l2, energy, force, virial,
            shift=s,
            rmse_energy=float(np.sqrt((labels.energy_weight * (delta - s) ** 2).sum() / S))
            if S
            else 0.0,
            rmse_force=float(np.sqrt(ferr.sum() / (3 * labels.num_atoms.sum())))
            if S
            else 0.0,
            rmse_virial=rmse_v,
        )

    def adjoints(
        self, labels: Labels, predictions: Predictions, z: np.ndarray | None = None
    ) -> Adjoints:
        """Derivatives of L(T) with respect to every predicted energy, force and virial
        (and, explicitly, to z through the regularisation).

        Where a root's argument is 0 (a perfect fit), its derivative is taken as 0.
        """
        w = self.weights
        S = labels.num_structures
        n_atoms = labels.num_atoms.astype(np.float64)

        # Energy: L_e = λ_e sqrt(X), X = Σ w²ε(Δ-s)²/S, s = Σ εΔ/Σε.
        delta = (predictions.energy - labels.energy) / n_atoms
        s = self.shift(labels, predictions)
        r = labels.weight**2 * labels.energy_weight * (delta - s)
        x_e = (r * (delta - s)).sum() / S
        alpha = np.zeros(S)
        if x_e > 0 and w.lambda_e != 0:
            d_delta = 2.0 * r / S
            den = labels.energy_weight.sum()
            if den > 0:  # through s: dX/ds = -Σ 2r/S, ds/dΔ_m = ε_m/Σε
                d_delta -= labels.energy_weight / den * d_delta.sum()
            alpha = w.lambda_e / (2.0 * np.sqrt(x_e)) * d_delta / n_atoms

        # Force: L_f = λ_f sqrt(Σ c_i |ΔF_i|² / (3 ΣN)).
        c = self._per_atom_force_weight(labels)
        dF = predictions.forces - labels.forces
        denom_f = 3.0 * n_atoms.sum()
        x_f = (c * (dF**2).sum(axis=1)).sum() / denom_f
        a = np.zeros_like(dF)
        if x_f > 0 and w.lambda_f != 0:
            a = w.lambda_f / (2.0 * np.sqrt(x_f)) * 2.0 * c[:, None] * dF / denom_f

        # Virial: L_v = λ_v sqrt(Σ_{n with virial} w² Σ κ (W̄ - W̄ref)² / (6 N_v)).
        kappa = np.array([1, 1, 1] + [w.lambda_shear**2] * 3, dtype=np.float64)
        vdiff = (virial_six(predictions.virial) - labels.virial) / n_atoms[:, None]
        vdiff[~labels.has_virial] = 0.0
        nv = int(labels.has_virial.sum())
        B = np.zeros((S, 3, 3))
        if nv and w.lambda_v != 0:
            x_v = (labels.weight**2 * (vdiff**2 @ kappa)).sum() / (6.0 * nv)
            if x_v > 0:
                adj6 = (
                    w.lambda_v / (2.0 * np.sqrt(x_v)) * 2.0
                    * (labels.weight**2)[:, None] * kappa * vdiff / (6.0 * nv)
                    / n_atoms[:, None]
                )
                B = _six_to_tensor_adjoint(adj6)

        reg = (
            np.zeros(self.num_parameters)
            if z is None
            else self._regularisation_gradient(np.asarray(z, dtype=np.float64))
        )
        return Adjoints(energy=alpha, forces=a, virial=B, regularisation=reg)


def c_loss_arguments(labels: Labels, loss: Loss) -> dict:
    """The labels of a training set and the loss's weights as the C loss takes them (the
    keyword arguments of ``_core.LossSet`` and ``_cuda.CudaTrainingSet.set_loss``: contiguous
    arrays of C types, by structure and atom of the whole set)."""
    w = loss.weights
    if w.lambda_1 is None or w.lambda_2 is None:
        raise ValueError("resolve the default λ1/λ2 first (LossWeights.resolved)")
    return dict(
        structure_offset=np.ascontiguousarray(labels.offsets, dtype=np.int64),
        energy=np.ascontiguousarray(labels.energy, dtype=np.float64),
        virial=np.ascontiguousarray(labels.virial, dtype=np.float64).reshape(-1, 6),
        has_virial=np.ascontiguousarray(labels.has_virial, dtype=np.intc),
        weight=np.ascontiguousarray(labels.weight, dtype=np.float64),
        energy_weight=np.ascontiguousarray(labels.energy_weight, dtype=np.float64),
        forces=np.ascontiguousarray(labels.forces, dtype=np.float64).reshape(-1, 3),
        types=np.ascontiguousarray(labels.atom_types, dtype=np.intc),
        type_weight=np.ascontiguousarray(w.type_weight, dtype=np.float64),
        force_delta=float(w.force_delta), lambda_e=float(w.lambda_e),
        lambda_f=float(w.lambda_f), lambda_v=float(w.lambda_v),
        lambda_shear=float(w.lambda_shear), lambda_1=float(w.lambda_1),
        lambda_2=float(w.lambda_2),
        parameter_types=np.ascontiguousarray(loss.parameter_types, dtype=np.intc),
        global_mask=np.ascontiguousarray(loss.global_mask, dtype=np.uint8),
    )


def combine_full_batch(values: list[LossValue]) -> LossValue:
    """GPUMD's ``batch N 1``: each λ-weighted term as √(mean of squares) over the batches
    (every batch counts equally); L1 and L2 are those of the first batch (the same z)."""
    def rms(name):
        return np.sqrt(np.mean([getattr(v, name) ** 2 for v in values], axis=0))

    energy, force, virial = rms("energy"), rms("force"), rms("virial")
    l1, l2 = values[0].l1, values[0].l2
    return LossValue.of_terms(
        l1, l2, energy, force, virial,
        shift=float(np.mean([v.shift for v in values])),
        rmse_energy=float(np.sqrt(np.mean([v.rmse_energy**2 for v in values]))),
        rmse_force=float(np.sqrt(np.mean([v.rmse_force**2 for v in values]))),
        rmse_virial=float(np.sqrt(np.mean([v.rmse_virial**2 for v in values]))),
    )
