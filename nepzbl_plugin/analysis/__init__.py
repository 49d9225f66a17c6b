"""Analyses of structures and MD trajectories, as freud-style objects: ``compute(...)`` (or
``accumulate(...)``) fills them, results are properties that raise
:class:`~nepzbl_plugin.analysis._base.NotComputedError` until then. Nothing here prints;
``nepzbl analyze`` (:mod:`nepzbl_plugin.cli.analyze`) prints and draws.

* :mod:`.pairs`: pair names and minimum distances per species pair.
* :mod:`.rdf`: partial radial distribution functions.
* :mod:`.msd`: MSD, self-diffusion (block uncertainty), Nernst-Einstein conductivity.
* :mod:`.arrhenius`: activation energy and room-temperature extrapolation.
* :mod:`.lattice`: lattice parameters against temperature, transition temperature.
* :mod:`.locality`: the locality test of any ASE calculator.
* :mod:`.descriptors`: PCA/UMAP maps of NEP or SOAP descriptors.
* :mod:`.plots`: PNGs of all of them.
"""

from __future__ import annotations

from ._base import AnalysisError, NotComputedError
from .arrhenius import Arrhenius
from .descriptors import DescriptorMap, nep_descriptors, pca, soap_descriptors
from .lattice import LatticeTemperature
from .locality import Locality, locality_radius
from .msd import MSD, nernst_einstein, unwrap
from .pairs import MinPairDistances, pair_key, pair_min_distances, pair_names
from .rdf import RDF

__all__ = [
    "AnalysisError", "NotComputedError", "RDF", "MSD", "Arrhenius", "LatticeTemperature",
    "Locality", "DescriptorMap", "MinPairDistances", "pair_key", "pair_names",
    "pair_min_distances", "nep_descriptors", "soap_descriptors", "pca", "locality_radius",
    "nernst_einstein", "unwrap",
]
