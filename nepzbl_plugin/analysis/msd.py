r"""Mean squared displacement per species and axis, self-diffusion coefficients and the
Nernst-Einstein conductivity.

Convention (the NEP-ZBL paper's, measured with GPUMD's ``compute_msd``): the MSD is averaged
over atoms of a species and over every time origin, for lags up to a *window*; the diffusion
coefficient is the slope of a straight line fitted over the first half of the window,
:math:`D_\alpha = \mathrm{slope}_\alpha / 2` per axis and
:math:`D = \sum_\alpha \mathrm{slope}_\alpha / 6` in 3D (the paper: the first 25 ps of a 50 ps
window). The uncertainty is the standard error of D over contiguous blocks of the trajectory,
each analysed in the same way.
"""

from __future__ import annotations

import numpy as np

from ._base import ANGSTROM2_PER_FS_TO_CM2_PER_S, AnalysisError, Compute

__all__ = ["MSD", "unwrap", "trajectory_arrays", "msd_per_axis", "nernst_einstein"]

_ELEMENTARY_CHARGE_C = 1.602176634e-19
_KB_J_PER_K = 1.380649e-23


def unwrap(positions: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Unwrap (F, N, 3) wrapped positions: each step between consecutive frames is replaced by
    its minimum image in that frame's cell (F, 3, 3), rows the cell vectors. Correct as long as
    no atom moves by half a cell length between frames."""
    positions = np.asarray(positions, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    steps = np.diff(positions, axis=0)
    for k in range(steps.shape[0]):
        cell = cells[k + 1]
        volume = abs(np.linalg.det(cell)) if np.all(np.isfinite(cell)) else np.nan
        if not volume > 1e-12:  # also NaN: inv would fail or give garbage
            raise AnalysisError(f"frame {k + 1}: the cell is singular or not finite; wrapped "
                                "positions need a full periodic cell to be unwrapped")
        fractional = steps[k] @ np.linalg.inv(cell)
        fractional -= np.round(fractional)
        steps[k] = fractional @ cell
    out = np.empty_like(positions)
    out[0] = positions[0]
    out[1:] = positions[0] + np.cumsum(steps, axis=0)
    return out


def trajectory_arrays(frames, dt_frame_fs: float | None = None, unwrapped: bool | None = None):
    """(positions (F, N, 3) unwrapped, symbols, frame interval in fs, volumes (F,) in Å^3).

    Positions are taken as unwrapped when ``unwrapped`` is True or, when it is None, when every
    frame carries ``info["unwrapped"] = True`` (as ``nepzbl md`` writes); otherwise they are
    unwrapped by :func:`unwrap`. The frame interval is ``dt_frame_fs`` or, when None, the
    uniform spacing of ``info["time_fs"]``.
    """
    if len(frames) < 2:
        raise AnalysisError(f"MSD needs at least 2 frames, got {len(frames)}")
    n = len(frames[0])
    symbols = frames[0].get_chemical_symbols()
    for k, atoms in enumerate(frames):
        if len(atoms) != n or atoms.get_chemical_symbols() != symbols:
            raise AnalysisError(f"frame {k} has other atoms than frame 0 ({len(atoms)} against "
                                f"{n}): an MSD needs the same atoms in the same order")
    positions = np.array([atoms.positions for atoms in frames])
    cells = np.array([atoms.cell.array for atoms in frames])
    if unwrapped is None:
        unwrapped = all(bool(atoms.info.get("unwrapped", False)) for atoms in frames)
    if not unwrapped:
        if any(atoms.cell.rank != 3 for atoms in frames):
            raise AnalysisError("wrapped positions without a full cell cannot be unwrapped")
        positions = unwrap(positions, cells)
    if dt_frame_fs is None:
        if not all("time_fs" in atoms.info for atoms in frames):
            raise AnalysisError("the frames carry no info 'time_fs': give the interval between "
                                "frames (--dt-frame FS)")
        times = np.array([float(atoms.info["time_fs"]) for atoms in frames])
        spacing = np.diff(times)
        if not np.all(spacing > 0) or np.ptp(spacing) > 1e-6 * abs(spacing[0]):
            raise AnalysisError("info 'time_fs' is not evenly spaced and increasing: give the "
                                "interval between frames (--dt-frame FS)")
        dt_frame_fs = float(np.mean(spacing))
    if not dt_frame_fs > 0:
        raise AnalysisError(f"the frame interval must be positive, not {dt_frame_fs} fs")
    volumes = np.array([abs(np.linalg.det(c)) for c in cells])
    return positions, symbols, float(dt_frame_fs), volumes


def msd_per_axis(positions: np.ndarray, max_lag: int) -> np.ndarray:
    """(max_lag, 3) MSD in Å² per axis for lags 0..max_lag-1 frames, averaged over the atoms of
    ``positions`` (F, n, 3) and over every time origin (F - lag of them for a lag), by the FFT
    form MSD(m) = S1(m) - 2 S2(m) with S2 the autocorrelation."""
    positions = np.asarray(positions, dtype=np.float64)
    F = positions.shape[0]
    if not 1 <= max_lag <= F:
        raise AnalysisError(f"window of {max_lag} frames does not fit {F} frames")
    x_all = positions.transpose(1, 2, 0).reshape(-1, F)  # (n*3, F), rows atom-major
    size = 1 << int(np.ceil(np.log2(2 * F)))
    lags = np.arange(max_lag)
    total_msd = np.zeros((3, max_lag))
    # rows in chunks (a multiple of 3, so every chunk holds whole atoms): the FFT buffers of a
    # long trajectory of thousands of atoms would not fit in memory at once
    chunk = 3 * max(1, (1 << 22) // (3 * size))
    for start in range(0, x_all.shape[0], chunk):
        x = x_all[start:start + chunk]
        x = x - x.mean(axis=1, keepdims=True)  # MSD is shift invariant; keeps rounding small
        spectrum = np.fft.rfft(x, n=size)
        autocorrelation = np.fft.irfft(spectrum * spectrum.conj(), n=size)[:, :max_lag]
        head = np.cumsum(x**2, axis=1)  # sum_{k<=t} x_k^2
        # sum_{k=0}^{F-1-m} x_k^2 + sum_{k=m}^{F-1} x_k^2
        first = head[:, F - 1 - lags]
        second = head[:, -1:] - np.concatenate([np.zeros((x.shape[0], 1)),
                                                head[:, :max_lag - 1]], axis=1)
        msd = (first + second - 2.0 * autocorrelation) / (F - lags)
        total_msd += msd.reshape(-1, 3, max_lag).sum(axis=0)
    return (total_msd / (x_all.shape[0] // 3)).T


def _fit_slopes(msd: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-axis slopes (Å²/fs) and intercepts of a straight line over the first half of the
    window (lags 0..W//2)."""
    W = msd.shape[0]
    last = max(W // 2, 1)
    t = np.arange(last + 1) * dt
    design = np.vstack([t, np.ones_like(t)]).T
    coefficients, *_ = np.linalg.lstsq(design, msd[:last + 1], rcond=None)
    return coefficients[0], coefficients[1], last


class MSD(Compute):
    """MSD and self-diffusion per species and axis (see the module docstring for the maths).

    Parameters
    ----------
    dt_frame_fs
        Time between frames, fs (None: from the frames' ``info["time_fs"]``).
    window_fs
        Longest lag, fs; the fit covers its first half. Default: the trajectory length divided
        by ``blocks``, so that every block holds one window.
    blocks
        Contiguous blocks for the uncertainty (at least 2 must hold a window).
    species
        Species to analyse (default: all).
    remove_drift
        Subtract the displacement of the centre of geometry of all atoms per frame (a drifting
        frame of reference otherwise adds to every MSD).
    """

    def __init__(self, dt_frame_fs: float | None = None, window_fs: float | None = None,
                 blocks: int = 5, species=None, remove_drift: bool = False):
        if int(blocks) < 2:
            raise AnalysisError(f"the uncertainty needs at least 2 blocks, not {blocks}")
        self.dt_frame_fs = dt_frame_fs
        self.window_fs = window_fs
        self.blocks = int(blocks)
        self.species = list(species) if species is not None else None
        self.remove_drift = bool(remove_drift)
        self._results = None

    def compute(self, frames, unwrapped: bool | None = None) -> MSD:
        """Analyse a list of ``ase.Atoms`` (the same atoms in every frame)."""
        positions, symbols, dt, volumes = trajectory_arrays(frames, self.dt_frame_fs,
                                                            unwrapped)
        return self.compute_arrays(positions, symbols, dt, volumes)

    def compute_arrays(self, positions, symbols, dt_frame_fs: float, volumes=None) -> MSD:
        """Analyse unwrapped positions (F, N, 3) in Å with ``symbols`` (N,)."""
        positions = np.asarray(positions, dtype=np.float64)
        F = positions.shape[0]
        symbols = np.asarray(symbols)
        if not np.all(np.isfinite(positions)):
            bad = np.argwhere(~np.isfinite(positions))[0]
            raise AnalysisError(f"frame {bad[0]}, atom {bad[1]}: NaN or infinite position (the "
                                "MSD would be NaN)")
        if self.remove_drift:
            positions = positions - (positions.mean(axis=1) - positions[0].mean(axis=0))[:, None]
        present = list(dict.fromkeys(symbols.tolist()))
        species = self.species if self.species is not None else present
        missing = [s for s in species if s not in present]
        if missing:
            raise AnalysisError(f"species {', '.join(missing)} not in the trajectory (it has "
                                f"{', '.join(present)})")
        if self.window_fs is None:
            window = F // self.blocks
        else:
            window = int(round(self.window_fs / dt_frame_fs)) + 1
        if window < 3:
            raise AnalysisError(f"a window of {window} frames is too short for a fit: "
                                f"{F} frames of {dt_frame_fs:g} fs in {self.blocks} blocks")
        if window > F:
            raise AnalysisError(f"the window ({(window - 1) * dt_frame_fs:g} fs) is longer than "
                                f"the trajectory ({(F - 1) * dt_frame_fs:g} fs)")
        blocks = min(self.blocks, F // window)
        if blocks < 2:
            raise AnalysisError(
                f"the trajectory ({F} frames of {dt_frame_fs:g} fs) holds fewer than two "
                f"windows of {(window - 1) * dt_frame_fs:g} fs: shorten the window")
        length = F // blocks
        to_cm2 = ANGSTROM2_PER_FS_TO_CM2_PER_S
        results = {"species": species, "dt_frame_fs": dt_frame_fs, "window_frames": window,
                   "blocks": blocks, "frames": F, "msd": {}, "D_axis": {}, "D": {},
                   "D_axis_error": {}, "D_error": {}, "intercept": {}, "counts": {},
                   "volume": float(np.mean(volumes)) if volumes is not None else None}
        for s in species:
            chosen = positions[:, symbols == s]
            msd = msd_per_axis(chosen, window)
            slopes, intercepts, last = _fit_slopes(msd, dt_frame_fs)
            block_slopes = np.array([
                _fit_slopes(msd_per_axis(chosen[b * length:(b + 1) * length], window),
                            dt_frame_fs)[0] for b in range(blocks)])
            block_axis = block_slopes / 2.0 * to_cm2
            block_total = block_slopes.sum(axis=1) / 6.0 * to_cm2
            results["msd"][s] = msd
            results["intercept"][s] = intercepts
            results["D_axis"][s] = slopes / 2.0 * to_cm2
            results["D"][s] = float(slopes.sum() / 6.0 * to_cm2)
            results["D_axis_error"][s] = block_axis.std(axis=0, ddof=1) / np.sqrt(blocks)
            results["D_error"][s] = float(block_total.std(ddof=1) / np.sqrt(blocks))
            results["counts"][s] = int(chosen.shape[1])
        results["fit_last_lag"] = last
        self._results = results
        return self

    # ---------------------------------------------------------------- results
    @property
    def lag_times_fs(self) -> np.ndarray:
        """Lag times of :attr:`msd`, fs."""
        return np.arange(self._result("window_frames")) * self._result("dt_frame_fs")

    @property
    def fit_range_fs(self) -> tuple[float, float]:
        """Lag-time range of the linear fit, fs (the first half of the window)."""
        return 0.0, self._result("fit_last_lag") * self._result("dt_frame_fs")

    @property
    def msd(self) -> dict[str, np.ndarray]:
        """{species: (window, 3) MSD per axis in Å²}."""
        return self._result("msd")

    @property
    def diffusion(self) -> dict[str, float]:
        """{species: D in cm²/s} (sum of the three slopes / 6)."""
        return self._result("D")

    @property
    def diffusion_error(self) -> dict[str, float]:
        """{species: standard error of D over blocks, cm²/s}."""
        return self._result("D_error")

    @property
    def diffusion_axis(self) -> dict[str, np.ndarray]:
        """{species: (3,) D_x, D_y, D_z in cm²/s (slope / 2 per axis)}."""
        return self._result("D_axis")

    @property
    def fit_intercept(self) -> dict[str, np.ndarray]:
        """{species: (3,) intercepts of the fitted lines per axis, Å²}."""
        return self._result("intercept")

    @property
    def diffusion_axis_error(self) -> dict[str, np.ndarray]:
        return self._result("D_axis_error")

    def conductivity(self, charges: dict[str, float], temperature_K: float) -> dict[str, float]:
        """Nernst-Einstein conductivity (S/cm) per species with a charge in ``charges``
        (elementary charges) at ``temperature_K``, from the mean volume of the frames."""
        volume = self._result("volume")
        if volume is None or not volume > 0:
            raise AnalysisError("the conductivity needs the cell volume of the frames")
        out = {}
        for s, charge in charges.items():
            if s not in self.diffusion:
                raise AnalysisError(f"no diffusion coefficient for {s}: analyse it too")
            out[s] = nernst_einstein(self.diffusion[s], self._result("counts")[s], volume,
                                     temperature_K, charge)
        return out

    def as_dict(self) -> dict:
        """Plain data for JSON (cm²/s, fs, Å²)."""
        return {
            "dt_frame_fs": self._result("dt_frame_fs"),
            "window_fs": float(self.lag_times_fs[-1]),
            "fit_range_fs": list(self.fit_range_fs),
            "blocks": self._result("blocks"), "frames": self._result("frames"),
            "species": {
                s: {"D_cm2_per_s": self.diffusion[s],
                    "D_error_cm2_per_s": self.diffusion_error[s],
                    "D_axis_cm2_per_s": self.diffusion_axis[s].tolist(),
                    "D_axis_error_cm2_per_s": self.diffusion_axis_error[s].tolist(),
                    "atoms": self._result("counts")[s]}
                for s in self._result("species")},
        }


def nernst_einstein(diffusion_cm2_per_s: float, count: int, volume_A3: float,
                    temperature_K: float, charge: float) -> float:
    """sigma = n q² e² D / (k_B T) in S/cm, n = count / volume the carrier density."""
    if not temperature_K > 0:
        raise AnalysisError(f"the temperature must be positive, not {temperature_K} K")
    if not (np.isfinite(volume_A3) and volume_A3 > 0):
        raise AnalysisError(f"the volume must be a positive number of Å^3, not {volume_A3}")
    density_per_cm3 = count / (volume_A3 * 1e-24)
    q = charge * _ELEMENTARY_CHARGE_C
    return float(density_per_cm3 * q * q * diffusion_cm2_per_s / (_KB_J_PER_K * temperature_K))
