"""Conversion to and from calorine's model object (``calorine.nep.model.Model``).

>>> from nepzbl_plugin.interop.calorine import from_calorine, to_calorine  # doctest: +SKIP
>>> cmodel = to_calorine(read_model("nep.txt"))                            # doctest: +SKIP

calorine is imported only when :func:`to_calorine` runs (it is an optional dependency);
:func:`from_calorine` reads the object's attributes and needs no import.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import InputError, UnsupportedModelError
from ..model import Model, ZBLSettings

__all__ = ["to_calorine", "from_calorine"]


def to_calorine(model: Model):
    """This model as a ``calorine.nep.model.Model`` (calorine 4.1 holds NEP4 only).

    The conversion goes through a lossless temporary ``nep.txt`` read by calorine's
    ``read_model``, so the result is exactly what calorine makes of our file.
    """
    if not isinstance(model, Model):
        raise InputError(f"to_calorine takes a nepzbl Model, not {type(model).__name__}")
    from calorine.nep import read_model as calorine_read_model

    if model.version != 4:
        raise UnsupportedModelError("<calorine Model>", None,
                                    f"calorine 4.1 holds NEP4 models only, not NEP"
                                    f"{model.version}")
    fd, tmp = tempfile.mkstemp(suffix=".txt", prefix="nepzbl-")
    os.close(fd)
    try:
        model.write(tmp, precision="full")
        return calorine_read_model(tmp)
    finally:
        os.unlink(tmp)


def from_calorine(cmodel) -> Model:
    """Convert a ``calorine.nep.model.Model`` (potential or temperature, NEP4)."""
    where = "<calorine Model>"
    if not hasattr(cmodel, "model_type") or not hasattr(cmodel, "ann_parameters"):
        raise InputError(f"from_calorine takes a calorine.nep.model.Model (calorine's "
                         f"read_model), not {type(cmodel).__name__}")
    if cmodel.model_type not in ("potential", "temperature") or getattr(cmodel, "vdw",
                                                                          False):
        raise UnsupportedModelError(where, None, f"calorine model of type "
                                                 f"{cmodel.model_type!r} is not a plain "
                                                 "potential")
    types = list(cmodel.types)
    T = len(types)
    ann = cmodel.ann_parameters
    values = []
    for s in types:
        values += [np.asarray(v, dtype=np.float64).ravel() for v in ann[s].values()]
    bias = "b2" if cmodel.n_neuron_second_layer else "b1"
    values.append(np.atleast_1d(np.float64(ann[bias])))
    nR, bR = cmodel.n_max_radial, cmodel.n_basis_radial
    nA, bA = cmodel.n_max_angular, cmodel.n_basis_angular
    c_r = np.empty((nR + 1, bR + 1, T, T))
    c_a = np.empty((nA + 1, bA + 1, T, T))
    for i, si in enumerate(types):
        for j, sj in enumerate(types):
            c_r[:, :, i, j] = cmodel.radial_descriptor_weights[(si, sj)]
            c_a[:, :, i, j] = cmodel.angular_descriptor_weights[(si, sj)]
    values += [c_r.ravel(), c_a.ravel()]
    zbl = None
    if cmodel.zbl is not None:
        inner, outer = (float(v) for v in cmodel.zbl)
        if inner == 0 and outer == 0:
            rows = []
            for a in range(T):
                for b in range(a, T):
                    pars = cmodel.zbl_parameters
                    key = (types[a], types[b])
                    row = pars[key] if key in pars else pars[(types[b], types[a])]
                    rows.append(np.asarray(row, dtype=np.float64))
            zbl = ZBLSettings("flexible", 0.0, 0.0, flexible=np.array(rows))
        elif cmodel.zbl_typewise_cutoff_factor is not None:
            zbl = ZBLSettings("typewise", inner, outer,
                              factor=float(cmodel.zbl_typewise_cutoff_factor))
        else:
            zbl = ZBLSettings("universal", inner, outer)
    return Model(
        version=int(cmodel.version),
        types=types,
        radial_cutoffs=cmodel.radial_cutoff,
        angular_cutoffs=cmodel.angular_cutoff,
        n_max_radial=nR,
        n_max_angular=nA,
        basis_size_radial=bR,
        basis_size_angular=bA,
        l_max=cmodel.l_max_3b,
        l_max_flags=(cmodel.l_max_4b, cmodel.l_max_5b, cmodel.has_q_112, cmodel.has_q_123,
                     cmodel.has_q_233, cmodel.has_q_134),
        n_neurons=cmodel.n_neuron,
        parameters=np.concatenate(values),
        q_scaler=np.asarray(cmodel.q_scaler, dtype=np.float64),
        zbl=zbl,
        max_neighbors_radial=int(cmodel.max_neighbors_radial or 0),
        max_neighbors_angular=int(cmodel.max_neighbors_angular or 0),
        n_neurons_second=int(cmodel.n_neuron_second_layer or 0),
        temperature=cmodel.model_type == "temperature",
        metadata={"source": "calorine"},
    )
