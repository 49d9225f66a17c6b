"""Choosing ZBL from data (the feature behind ``nepzbl zbl suggest|fit``).

* :mod:`.suggest`: outer radii below the distances a training set contains, in the typewise,
  flexible or universal form GPUMD runs (:func:`suggest_zbl`).
* :mod:`.fit`: GPUMD's flexible ZBL coefficients fitted to the dimer energies of an oracle
  (:func:`oracle_dimer_energies`, :func:`fit_flexible_zbl`).

The ZBL maths itself (universal screening, per-pair energies) is
:mod:`nepzbl_plugin.audit.zbl`.
"""

from .fit import FlexibleZBLFit, fit_flexible_zbl, oracle_dimer_energies
from .suggest import ZBLChoiceError, ZBLSuggestion, suggest_zbl

__all__ = [
    "ZBLSuggestion",
    "suggest_zbl",
    "FlexibleZBLFit",
    "fit_flexible_zbl",
    "oracle_dimer_energies",
    "ZBLChoiceError",
]
