"""Starting parameters for gradient training.

GPUMD's SNES starts every parameter from U(−1, 1). Gradient descent trains faster from a
start in which no tanh is saturated and every species' network sees centred inputs, so here:

* c coefficients ~ U(−1, 1) (as GPUMD: diverse radial and angular channels, O(1) descriptors
  after the q_scaler);
* w0 ~ N(0, 1/D) divided by each scaled descriptor's spread over the training atoms of that
  species (floored at ``spread_floor``, so rare components do not get huge weights, which
  GPUMD's L1/L2 regularisation would punish), and b0 = w0·mean(q), so the hidden
  pre-activations start centred;
* w1 ~ N(0, 1/N1)·``output_scale``; with a second hidden layer w1 ~ N(0, 1/N1) (N2 × N1),
  b1 = 0 and w2 ~ N(0, 1/N2)·``output_scale``;
* the shared bias 0 (the energy loss does not see it; the writer corrects it, 4.7).
"""

from __future__ import annotations

import numpy as np

__all__ = ["initialise_parameters"]


def initialise_parameters(model, structures=None, *, seed: int = 0,
                          output_scale: float = 0.5, spread_floor: float = 0.3,
                          max_structures: int = 64) -> np.ndarray:
    """A starting parameter vector for ``model`` (which must already hold its q_scaler).

    Parameters
    ----------
    model
        The model to initialise (not modified).
    structures
        Training structures used to centre the hidden layer; without them the descriptors
        are assumed to be centred with unit spread.
    seed
        Seed of the random generator.
    output_scale
        Scale of the output weights.
    spread_floor
        Smallest descriptor spread used to scale w0.
    max_structures
        At most this many structures (an even subsample) are used for the statistics.
    """
    rng = np.random.default_rng(seed)
    work = model.copy()
    p = np.zeros(work.num_parameters)
    nn = work.num_network_parameters
    p[nn:] = rng.uniform(-1.0, 1.0, p.size - nn)
    work.parameters[:] = p
    D, N1 = work.descriptor_dim, work.n_neurons
    T = work.num_types
    mean = np.zeros((T, D))
    spread = np.ones((T, D))
    if structures is not None and len(structures):
        from ._backend import EngineBackend

        pick = np.unique(np.linspace(0, len(structures) - 1,
                                     min(max_structures, len(structures))).astype(int))
        subset = [structures[i] for i in pick]
        backend = EngineBackend(work, subset)
        index = {s: i for i, s in enumerate(work.types)}
        per_type = [[] for _ in range(T)]
        for st, q in zip(subset, backend.descriptors(range(len(subset))), strict=True):
            types = np.array([index[s] for s in st.symbols])
            q = np.asarray(q).reshape(-1, D)
            for t in range(T):
                per_type[t].append(q[types == t])
        for t in range(T):
            if per_type[t]:
                q = np.concatenate(per_type[t])
                if len(q):
                    mean[t] = q.mean(axis=0)
                    std = q.std(axis=0)
                    spread[t] = np.maximum(std, spread_floor)
    N2 = work.n_neurons_second
    for b in range(work.num_networks):
        net = work.network(b)
        t = b if work.version != 3 else slice(None)
        m = mean[t] if work.version != 3 else mean.mean(axis=0)
        s = spread[t] if work.version != 3 else spread.mean(axis=0)
        w0 = rng.normal(0.0, 1.0 / np.sqrt(D), (N1, D)) / s
        net["w0"][:] = w0
        net["b0"][:] = w0 @ m
        if N2 > 0:  # a second hidden layer: unit-variance pre-activations, small output
            net["w1"][:] = rng.normal(0.0, 1.0 / np.sqrt(N1), (N2, N1))
            net["b1"][:] = 0.0
            net["w2"][:] = rng.normal(0.0, 1.0 / np.sqrt(N2), N2) * output_scale
        else:
            net["w1"][:] = rng.normal(0.0, 1.0 / np.sqrt(N1), N1) * output_scale
        if "beta" in net:
            net["beta"][:] = 0.0
    p[:nn] = work.parameters[:nn]
    p[nn - 1] = 0.0
    return p
