"""GPUMD's q_scaler procedure (``nep-reference.md`` section 4.3).

Every parameter is set to ``initial_para`` (so every descriptor coefficient c is 1), the raw
descriptors of all training structures are evaluated, and q_scaler[d] = 1/(max_d − min_d)
over all training atoms. The values are then frozen and written with every nep.txt.
A temperature model's last entry (the temperature input) is GPUMD's fixed 0.001 instead.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["compute_q_scaler", "TEMPERATURE_SCALER"]

#: q_scaler of the temperature input of temperature models: GPUMD's trainer fixes it at 0.001
#: (1000 K enters the network as 1) whatever the training temperatures span.
TEMPERATURE_SCALER = 0.001


def compute_q_scaler(model, structures, *, initial_para: float = 1.0,
                     chunk_size: int = 64) -> np.ndarray:
    """q_scaler of ``model``'s descriptors over ``structures``.

    Parameters
    ----------
    model
        Supplies the header (types, cutoffs, descriptor sizes); its parameters are not used.
    structures
        The training structures (the test set does not take part).
    initial_para
        GPUMD's hidden ``initial_para`` keyword: the value of every parameter in this pass.
    chunk_size
        Structures evaluated at a time (bounds the memory of the descriptor arrays).

    Returns
    -------
    numpy.ndarray
        (D,) q_scaler. A component that is constant over the training set (GPUMD would
        divide by 0) gets 1.0 and a warning. A temperature model's temperature entry gets
        :data:`TEMPERATURE_SCALER`, as GPUMD's trainer sets it.
    """
    from ._backend import EngineBackend

    probe = model.copy()
    probe.parameters[:] = initial_para
    probe.q_scaler[:] = 1.0
    backend = EngineBackend(probe, structures)
    D = probe.descriptor_dim
    qmax = np.full(D, -np.inf)
    qmin = np.full(D, np.inf)
    n = len(structures)
    for start in range(0, n, chunk_size):
        for q in backend.descriptors(range(start, min(n, start + chunk_size))):
            q = np.asarray(q).reshape(-1, D)
            if q.size:
                qmax = np.maximum(qmax, q.max(axis=0))
                qmin = np.minimum(qmin, q.min(axis=0))
    span = qmax - qmin
    if probe.temperature:
        span[-1] = 1.0 / TEMPERATURE_SCALER  # fixed, never from the data
    bad = ~(span > 0) | ~np.isfinite(span)
    if bad.any():
        warnings.warn(
            f"descriptor components {np.flatnonzero(bad).tolist()} are constant over the "
            "training set; their q_scaler is set to 1 (GPUMD would divide by zero)",
            RuntimeWarning,
            stacklevel=2,
        )
    out = np.ones(D)
    out[~bad] = 1.0 / span[~bad]
    return out
