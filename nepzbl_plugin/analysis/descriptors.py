"""Descriptor maps: per-atom descriptors projected to 2D, coloured by species.

The NEP descriptors are the network inputs of a model (scaled by its q_scaler), as the NEP-ZBL
paper maps Li environments; dscribe's SOAP is the model-independent alternative. The
projection is PCA (numpy SVD of the centred data) or, when the ``umap-learn`` package is
installed, UMAP.
"""

from __future__ import annotations

import numpy as np

from ..checks import whole_number
from ._base import AnalysisError, Compute

__all__ = ["nep_descriptors", "soap_descriptors", "pca", "DescriptorMap", "umap_available",
           "dscribe_available"]


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def dscribe_available() -> bool:
    try:
        from dscribe.descriptors import SOAP  # noqa: F401
    except ImportError:
        return False
    return True


def nep_descriptors(frames, model) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors (atoms of all frames, D), symbols) of a NEP ``model`` (a Model or a
    nep.txt path) on ``frames`` (ase.Atoms, their own periodicity)."""
    from ..engine import Evaluator

    if hasattr(frames, "get_chemical_symbols"):
        frames = [frames]
    evaluator = Evaluator(model)
    outputs = evaluator.evaluate_many(list(frames), ("descriptors",))
    descriptors = np.concatenate([o["descriptors"] for o in outputs])
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    return descriptors, symbols


def soap_descriptors(frames, species=None, r_cut: float = 5.0, n_max: int = 6,
                     l_max: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(SOAP power spectra (atoms of all frames, D), symbols) from dscribe; raises
    :class:`AnalysisError` when dscribe is not installed."""
    try:
        from dscribe.descriptors import SOAP
    except ImportError:
        raise AnalysisError("SOAP descriptors need the dscribe package (pip install dscribe)"
                            ) from None
    if hasattr(frames, "get_chemical_symbols"):
        frames = [frames]
    frames = list(frames)
    if species is None:
        species = sorted({s for a in frames for s in a.get_chemical_symbols()})
    periodic = any(bool(np.any(a.pbc)) for a in frames)
    soap = SOAP(species=list(species), r_cut=r_cut, n_max=n_max, l_max=l_max,
                periodic=periodic)
    descriptors = np.concatenate([np.atleast_2d(soap.create(a)) for a in frames])
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    return descriptors, symbols


def pca(data, n_components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(projection (n, k), explained variance ratio (k,), components (k, D)) of the centred
    ``data`` by SVD. Signs are fixed so the largest loading of each component is positive
    (the same data always give the same picture)."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise AnalysisError(f"PCA needs at least 2 rows of descriptors, got shape {data.shape}")
    k = min(n_components, *data.shape)
    centred = data - data.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    variance = singular**2
    total = variance.sum()
    ratio = variance[:k] / total if total > 0 else np.zeros(k)
    return centred @ vt[:k].T, ratio, vt[:k]


class DescriptorMap(Compute):
    """2D map of per-atom descriptors.

    Parameters
    ----------
    method
        ``"pca"`` or ``"umap"`` (needs umap-learn).
    n_components
        Dimensions of the map.
    seed
        Seed of UMAP (PCA is deterministic).
    """

    def __init__(self, method: str = "pca", n_components: int = 2, seed: int = 0):
        if method not in ("pca", "umap"):
            raise AnalysisError(f"method must be 'pca' or 'umap', not {method!r}")
        if method == "umap" and not umap_available():
            raise AnalysisError("method 'umap' needs the umap-learn package (pip install "
                                "umap-learn); 'pca' needs nothing")
        if whole_number(n_components, floats=False) is None or n_components < 1:
            raise AnalysisError(f"n_components must be a whole number >= 1, not {n_components!r}")
        self.method = method
        self.n_components = int(n_components)
        self.seed = int(seed)
        self._results = None

    def compute(self, descriptors, symbols) -> DescriptorMap:
        descriptors = np.asarray(descriptors, dtype=np.float64)
        symbols = np.asarray(symbols)
        if descriptors.ndim != 2 or descriptors.shape[0] != symbols.shape[0]:
            raise AnalysisError(f"{symbols.shape[0]} symbols for descriptors of shape "
                                f"{descriptors.shape}")
        if not np.all(np.isfinite(descriptors)):
            raise AnalysisError("the descriptors contain NaN or infinite values")
        ratio = None
        if self.method == "pca":
            embedding, ratio, _ = pca(descriptors, self.n_components)
        else:
            import umap

            embedding = umap.UMAP(n_components=self.n_components,
                                  random_state=self.seed).fit_transform(descriptors)
        species = list(dict.fromkeys(symbols.tolist()))
        self._results = {"embedding": np.asarray(embedding), "symbols": symbols,
                         "ratio": ratio, "species": species}
        return self

    @property
    def embedding(self) -> np.ndarray:
        """(atoms, n_components) map coordinates."""
        return self._result("embedding")

    @property
    def symbols(self) -> np.ndarray:
        return self._result("symbols")

    @property
    def explained_variance_ratio(self) -> np.ndarray | None:
        """Fraction of the variance per PCA component (None for UMAP)."""
        return self._result("ratio")

    def by_species(self) -> dict[str, np.ndarray]:
        """{species: its rows of :attr:`embedding`}."""
        return {s: self.embedding[self.symbols == s] for s in self._result("species")}

    def as_dict(self) -> dict:
        ratio = self.explained_variance_ratio
        return {"method": self.method, "atoms": int(self.embedding.shape[0]),
                "explained_variance_ratio": None if ratio is None else ratio.tolist(),
                "species": {s: {"atoms": int(rows.shape[0]),
                                "centroid": rows.mean(axis=0).tolist(),
                                "std": rows.std(axis=0).tolist()}
                            for s, rows in self.by_species().items()}}
