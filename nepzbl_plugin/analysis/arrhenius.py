r"""Arrhenius fit of diffusion coefficients: :math:`D(T) = D_0 \exp(-E_a / k_B T)`."""

from __future__ import annotations

import numpy as np

from ._base import KB_EV_PER_K, AnalysisError, Compute, as_float_array

__all__ = ["Arrhenius"]


class Arrhenius(Compute):
    r"""Straight line :math:`\ln D = \ln D_0 - E_a / (k_B T)` fitted by least squares.

    With uncertainties of D the points are weighted by :math:`1/\sigma_{\ln D}^2`
    (:math:`\sigma_{\ln D} = \sigma_D / D`) and the parameter covariance is the inverse normal
    matrix; without them all points weigh the same and the covariance is scaled by the residual
    variance (which needs at least 3 temperatures). D keeps whatever unit it is given in
    (cm²/s from :class:`~nepzbl_plugin.analysis.msd.MSD`); Ea is in eV.
    """

    def __init__(self):
        self._results = None

    def compute(self, temperatures_K, diffusion, diffusion_error=None) -> Arrhenius:
        T = as_float_array(temperatures_K, "temperatures")
        D = as_float_array(diffusion, "diffusion coefficients")
        if T.shape != D.shape:
            raise AnalysisError(f"{T.size} temperatures but {D.size} diffusion coefficients")
        if T.size < 2:
            raise AnalysisError("an Arrhenius fit needs at least 2 temperatures")
        if np.any(T <= 0) or np.any(D <= 0):
            raise AnalysisError("temperatures and diffusion coefficients must be positive")
        if np.unique(T).size < 2:
            raise AnalysisError("an Arrhenius fit needs at least 2 different temperatures")
        x = 1.0 / (KB_EV_PER_K * T)  # 1/eV
        y = np.log(D)
        design = np.vstack([np.ones_like(x), -x]).T  # parameters ln D0, Ea
        if diffusion_error is not None:
            error = as_float_array(diffusion_error, "diffusion uncertainties")
            if error.shape != D.shape or np.any(error <= 0):
                raise AnalysisError("give one positive uncertainty per diffusion coefficient")
            weights = (D / error) ** 2
            normal = design.T @ (weights[:, None] * design)
            covariance = np.linalg.inv(normal)
            parameters = covariance @ design.T @ (weights * y)
        else:
            normal = design.T @ design
            parameters = np.linalg.solve(normal, design.T @ y)
            if T.size > 2:
                residual = y - design @ parameters
                covariance = np.linalg.inv(normal) * (residual @ residual) / (T.size - 2)
            else:  # two points fix the line exactly: nothing is left to estimate errors from
                covariance = None
        self._results = {"T": T, "D": D,
                         "D_error": None if diffusion_error is None else error,
                         "parameters": parameters, "covariance": covariance}
        return self

    @property
    def temperatures(self) -> np.ndarray:
        """The temperatures fitted, K."""
        return self._result("T")

    @property
    def diffusion(self) -> np.ndarray:
        """The diffusion coefficients fitted."""
        return self._result("D")

    @property
    def diffusion_error(self) -> np.ndarray | None:
        """Their uncertainties (None: unweighted fit)."""
        return self._result("D_error")

    @property
    def activation_energy(self) -> float:
        """Ea, eV."""
        return float(self._result("parameters")[1])

    @property
    def activation_energy_error(self) -> float | None:
        """Standard error of Ea, eV (None for two unweighted points: no residual left)."""
        covariance = self._result("covariance")
        return None if covariance is None else float(np.sqrt(covariance[1, 1]))

    @property
    def prefactor(self) -> float:
        """D0, in the unit of D."""
        return float(np.exp(self._result("parameters")[0]))

    @property
    def prefactor_error(self) -> float | None:
        """Standard error of D0 (None for two unweighted points)."""
        covariance = self._result("covariance")
        return None if covariance is None else float(self.prefactor * np.sqrt(covariance[0, 0]))

    def predict(self, temperature_K) -> np.ndarray:
        """D at ``temperature_K`` from the fit."""
        ln_d0, ea = self._result("parameters")
        T = as_float_array(temperature_K, "temperature_K", np.ndim(temperature_K))
        if np.any(T <= 0):
            raise AnalysisError(f"temperature_K must be positive, not {temperature_K}")
        return np.exp(ln_d0 - ea / (KB_EV_PER_K * T))

    def extrapolate(self, temperature_K: float = 300.0) -> tuple[float, float | None]:
        """(D, its standard error) at ``temperature_K`` (default room temperature, 300 K),
        the error propagated through the covariance of ln D0 and Ea (None for two unweighted
        points)."""
        value = float(self.predict(temperature_K))
        covariance = self._result("covariance")
        if covariance is None:
            return value, None
        gradient = np.array([1.0, -1.0 / (KB_EV_PER_K * temperature_K)])
        variance = gradient @ covariance @ gradient
        return value, float(value * np.sqrt(variance))

    def as_dict(self, room_temperature_K: float = 300.0) -> dict:
        d_room, d_room_error = self.extrapolate(room_temperature_K)
        return {"Ea_eV": self.activation_energy, "Ea_error_eV": self.activation_energy_error,
                "D0": self.prefactor, "D0_error": self.prefactor_error,
                "room_temperature_K": room_temperature_K, "D_room": d_room,
                "D_room_error": d_room_error,
                "temperatures_K": self._result("T").tolist(), "D": self._result("D").tolist()}
