"""Helpers for tests: physically sensible random NEP models of every variant.

:func:`random_model` builds a model whose energies are O(1) eV per atom and whose forces are
O(1) eV/Angstrom for ordinary interatomic distances, so that engine tests can compare against
calorine's CPUNEP and finite differences with meaningful tolerances.

Note the NEP_CPU ``l_max`` bug (``nep-reference.md`` section 1.5): NEP_CPU ignores the optional
flags q112..q134 whenever q222 is on. For models meant to be compared with calorine, do not
combine ``flags[0] != 0`` with any of ``flags[2:]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import UNIVERSAL_ZBL_COEFFICIENTS, Model, ZBLSettings

__all__ = ["random_model", "random_flexible_zbl_table"]


def _per_type(value, num_types: int, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.size == 1:
        return np.full(num_types, float(arr[0]))
    if arr.size != num_types:
        raise ValueError(f"{what}: expected 1 or {num_types} values, got {arr.size}")
    return arr


def random_flexible_zbl_table(num_types: int, rng: np.random.Generator,
                              max_outer: float = 2.0) -> np.ndarray:
    """A (T(T+1)/2, 10) flexible-ZBL table near the universal screening function.

    Each row is r_inner, r_outer, A1, B1, ..., A4, B4 with 0.5 <= r_inner < r_outer <= max_outer,
    the A's positive and summing to 1 within 2 %, and the B's within 20 % of universal values.
    """
    num_pairs = num_types * (num_types + 1) // 2
    universal = np.array(UNIVERSAL_ZBL_COEFFICIENTS)
    table = np.empty((num_pairs, 10))
    for p in range(num_pairs):
        outer = rng.uniform(0.75, 1.0) * max_outer
        inner = rng.uniform(0.35, 0.6) * outer
        a = universal[:, 0] * rng.uniform(0.8, 1.2, 4)
        a *= rng.uniform(0.98, 1.02) / a.sum()
        b = universal[:, 1] * rng.uniform(0.8, 1.2, 4)
        table[p, 0], table[p, 1] = inner, outer
        table[p, 2::2] = a
        table[p, 3::2] = b
    return table


def random_model(
    version: int = 4,
    types: Sequence[str] = ("Li", "O"),
    zbl: str | None = None,
    flags: Sequence[int] = (2, 1, 0, 0, 0, 0),
    l_max: int = 4,
    n_max: tuple[int, int] = (4, 4),
    basis: tuple[int, int] = (8, 8),
    neurons: int = 10,
    cutoffs=(5.0, 4.0),
    seed: int = 0,
    scale: float = 1.0,
    *,
    zbl_outer: float | None = None,
    zbl_factor: float = 0.7,
    temperature: bool = False,
    neurons_second: int = 0,
    max_neighbors: tuple[int, int] = (100, 50),
) -> Model:
    """A random but physically sensible NEP model.

    Parameters
    ----------
    version
        3 (one shared network), 4 or 5 (per-species output bias).
    types
        Element symbols; their order defines the type indices.
    zbl
        ``None``, ``"universal"``, ``"typewise"`` or ``"flexible"``.
    flags
        (q222, q1111, q112, q123, q233, q134); q222 is written as 2 when on.
    l_max, n_max, basis, neurons
        Descriptor and network sizes (``n_max`` and ``basis`` are (radial, angular)).
    cutoffs
        ``(rcR, rcA)`` in Angstrom; each may be a scalar or a list with one value per type.
    seed
        Seed of the random generator (same seed, same model).
    scale
        Multiplies the output-layer weights: energies scale roughly linearly with it.
    zbl_outer
        ZBL outer radius in Angstrom (universal/typewise); default min(2, 0.5 * smallest
        angular cutoff). The inner radius is half of it, as GPUMD writes it.
    zbl_factor
        Typewise ZBL factor.
    temperature
        Build a ``nep4_temperature`` model (one extra input, its q_scaler 0.001).
    neurons_second
        N2 of ``ANN N1 N2``: a second hidden layer of N2 neurons (0: none).
    max_neighbors
        The neighbour counts written on the cutoff line.
    """
    rng = np.random.default_rng(seed)
    types = list(types)
    T = len(types)
    rc_r = _per_type(cutoffs[0], T, "radial cutoffs")
    rc_a = _per_type(cutoffs[1], T, "angular cutoffs")
    if np.any(rc_a > rc_r) or np.any(rc_a <= 0):
        raise ValueError("angular cutoffs must be positive and not larger than radial ones")
    min_pair_angular = float(0.5 * (rc_a[:, None] + rc_a[None, :]).min())

    zbl_settings = None
    if zbl is not None:
        outer = zbl_outer if zbl_outer is not None else min(2.0, 0.5 * min_pair_angular)
        if zbl == "universal":
            zbl_settings = ZBLSettings("universal", inner=outer / 2, outer=outer)
        elif zbl == "typewise":
            zbl_settings = ZBLSettings("typewise", inner=outer / 2, outer=outer,
                                       factor=zbl_factor)
        elif zbl == "flexible":
            # its own stream, so the network is the same as without ZBL for the same seed
            zbl_rng = np.random.default_rng([seed, 1])
            table = random_flexible_zbl_table(T, zbl_rng, min(outer, min_pair_angular))
            zbl_settings = ZBLSettings("flexible", inner=0.0, outer=0.0, flexible=table)
        else:
            raise ValueError(f"zbl must be None, 'universal', 'typewise' or 'flexible', "
                             f"not {zbl!r}")

    flags = tuple(int(f) for f in flags) + (0,) * (6 - len(flags))
    flags = (2 if flags[0] else 0,) + tuple(1 if f else 0 for f in flags[1:6])
    probe = Model.empty(
        version=version,
        types=types,
        radial_cutoffs=rc_r,
        angular_cutoffs=rc_a,
        n_max_radial=n_max[0],
        n_max_angular=n_max[1],
        basis_size_radial=basis[0],
        basis_size_angular=basis[1],
        l_max=l_max,
        l_max_flags=flags,
        n_neurons=neurons,
        zbl=zbl_settings,
        max_neighbors_radial=max_neighbors[0],
        max_neighbors_angular=max_neighbors[1],
        n_neurons_second=neurons_second,
        temperature=temperature,
    )
    D = probe.descriptor_dim
    N1 = neurons

    # q_scaler: realistic magnitudes (1/(max - min) of raw descriptors): radial 0.3..2,
    # angular blocks smaller, temperature 0.001 as GPUMD's training sets it.
    n_rad = n_max[0] + 1
    q_scaler = np.empty(D)
    q_scaler[:n_rad] = rng.uniform(0.3, 2.0, n_rad)
    q_scaler[n_rad:] = rng.uniform(0.1, 1.0, D - n_rad)
    if temperature:
        q_scaler[-1] = 0.001

    parameters = np.zeros(probe.num_parameters)
    size = probe.network_block_size
    for b in range(probe.num_networks):
        block = parameters[b * size : (b + 1) * size]
        if neurons_second > 0:
            block[:] = rng.normal(0.0, 0.3, size) * scale
            continue
        block[: N1 * D] = rng.normal(0.0, 1.0 / np.sqrt(D), N1 * D)
        block[N1 * D : N1 * D + N1] = rng.normal(0.0, 0.3, N1)
        block[N1 * D + N1 : N1 * D + 2 * N1] = rng.normal(0.0, 1.0 / np.sqrt(N1), N1) * scale
        if version == 5:
            block[-1] = rng.normal(0.0, 0.1) * scale
    nn = probe.num_network_parameters
    parameters[nn - 1] = rng.normal(0.0, 0.1) * scale
    # c coefficients: O(1) like trained models, so descriptors span O(1) after scaling.
    parameters[nn:] = rng.uniform(-1.0, 1.0, parameters.size - nn)

    probe.parameters[:] = parameters
    probe.q_scaler[:] = q_scaler
    probe.metadata = {"source": f"nepzbl_plugin.testing.random_model(seed={seed})"}
    model = probe
    return model
