"""Molecular dynamics: integrators and the observers a run takes as arguments.

- :mod:`.ase_nvt`: Langevin NVT through ASE and any ASE calculator (the audit's stress test).
- :mod:`.dynamics`: the array MD engine, velocity Verlet on the C engine's arrays with NVE,
  Langevin and Bussi NVT, Berendsen and stochastic-cell-rescaling NPT, temperature ramps.
- :mod:`.observers`: minimum distances per pair, partial RDFs, knock-on collisions, thermo and
  trajectory output.
- :mod:`.gpumd`: the same run as GPUMD's ``run.in`` and ``model.xyz``.
- :mod:`.cuda_loop`: the device-resident loop ``run_md`` uses with a CUDA evaluator, and the
  RDF / MSD observers it accumulates on the GPU (:class:`DeviceRDF`, :class:`DeviceMSD`).

Units are ASE's: Angstrom, eV, amu, fs for times given to the user.
"""

from __future__ import annotations

from .ase_nvt import NVTResult, run_nvt
from .ase_nvt import _thermalize as _thermalize  # imported by demo.py
from .cuda_loop import DeviceMSD, DeviceRDF
from .dynamics import (
    ENSEMBLES,
    CalculatorForces,
    EngineForces,
    Frame,
    MDResult,
    MDSetupError,
    TemperatureSchedule,
    run_md,
)
from .observers import (
    THERMO_COLUMNS,
    DistanceMonitor,
    KnockOns,
    OutputExistsError,
    ThermoLog,
    TrajectoryWriter,
    _pair_key,  # noqa: F401  (imported by the audit)
    knock_on,
    pair_min_distances,
    partial_rdf,
    partial_rdf_counts,
)

__all__ = ["NVTResult", "KnockOns", "knock_on", "run_nvt", "partial_rdf_counts", "partial_rdf",
           "pair_min_distances", "ENSEMBLES", "TemperatureSchedule", "EngineForces",
           "CalculatorForces", "Frame", "MDResult", "MDSetupError", "run_md", "DistanceMonitor",
           "ThermoLog", "TrajectoryWriter", "OutputExistsError", "THERMO_COLUMNS", "DeviceRDF",
           "DeviceMSD"]
