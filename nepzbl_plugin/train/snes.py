"""SNES with GPUMD's semantics (``nep-reference.md`` section 4.6).

Separable natural evolution strategy (Schaul et al. 2011) as GPUMD's ``nep`` runs it:
rank-based utilities u_k = max(0, ln(λ/2 + 1) − ln k) normalised to Σu = 1 then shifted by
−1/λ, η_σ = (3 + ln m)/(5√m)/2 with m = ⌊N_par/T⌋, learning rate 1 for μ, σ capped at 1, and
**per-type ranking**: every parameter is updated with the ranking of the population by the
loss L(t) of its own type t (species, or T for the global bias).

The random numbers come from numpy's PCG64 seeded by ``seed`` (GPUMD uses curand with a fixed
seed and a clock-seeded initial μ); the same seed gives the same run, also across a resume,
because the generator state is part of :meth:`state_dict`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SNES", "snes_utilities", "snes_eta_sigma"]


def snes_utilities(population: int) -> np.ndarray:
    """GPUMD's utilities for ranks 1..λ (best first): they sum to 0."""
    k = np.arange(1, population + 1, dtype=np.float64)
    u = np.maximum(0.0, np.log(population / 2.0 + 1.0) - np.log(k))
    return u / u.sum() - 1.0 / population


def snes_eta_sigma(num_parameters: int, num_types: int) -> float:
    """η_σ = (3 + ln m)/(5√m)/2 with the integer quotient m = ⌊N_par/T⌋."""
    m = num_parameters // num_types
    return float((3.0 + np.log(m)) / (5.0 * np.sqrt(m)) / 2.0)


class SNES:
    """The search distribution N(μ, diag σ²) and its update.

    Parameters
    ----------
    parameter_types
        (N_par,) type of every parameter, 0..T (``Model.parameter_types()``).
    num_types
        T.
    population
        λ.
    sigma0
        Initial σ.
    seed
        Seed of the generator (initial μ ~ U(−1, 1) and the samples).
    mu
        Initial μ instead of U(−1, 1) (fine-tuning, or a gradient-trained start).
    """

    def __init__(
        self,
        parameter_types,
        num_types: int,
        *,
        population: int = 50,
        sigma0: float = 0.1,
        seed: int = 0,
        mu: np.ndarray | None = None,
    ):
        self.parameter_types = np.asarray(parameter_types, dtype=np.int64)
        self.num_types = int(num_types)
        self.population = int(population)
        if self.population < 2:
            raise ValueError(f"SNES needs a population of at least 2, got {population}")
        n = self.parameter_types.size
        self.rng = np.random.default_rng(seed)
        self.mu = self.rng.uniform(-1.0, 1.0, n) if mu is None else np.array(mu, np.float64)
        self.sigma = np.full(n, float(sigma0))
        self.utilities = snes_utilities(self.population)
        self.eta_sigma = snes_eta_sigma(n, self.num_types)
        self._samples: np.ndarray | None = None

    @property
    def num_parameters(self) -> int:
        return self.mu.size

    def ask(self) -> np.ndarray:
        """Draw the population: (λ, N_par) candidates z_p = μ + σ ⊙ s_p."""
        self._samples = self.rng.standard_normal((self.population, self.num_parameters))
        return self.mu + self.sigma * self._samples

    def tell(self, losses: np.ndarray) -> int:
        """Update μ and σ from the losses L(t) of the last :meth:`ask`.

        Parameters
        ----------
        losses
            (λ, T+1): loss of every candidate for every type t = 0..T.

        Returns
        -------
        int
            Index of the best candidate by the global loss L(T).
        """
        if self._samples is None:
            raise RuntimeError("tell() needs a preceding ask()")
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != (self.population, self.num_types + 1):
            raise ValueError(
                f"expected losses of shape {(self.population, self.num_types + 1)}, "
                f"got {losses.shape}"
            )
        # A non-finite loss ranks last instead of poisoning the sort.
        losses = np.where(np.isfinite(losses), losses, np.inf)
        s = self._samples
        grad_mu = np.empty(self.num_parameters)
        grad_sigma = np.empty(self.num_parameters)
        for t in range(self.num_types + 1):
            mask = self.parameter_types == t
            if not mask.any():
                continue
            order = np.argsort(losses[:, t], kind="stable")  # ascending: rank 1 first
            st = s[order][:, mask]
            grad_mu[mask] = self.utilities @ st
            grad_sigma[mask] = self.utilities @ (st * st - 1.0)
        self.mu += self.sigma * grad_mu
        self.sigma = np.minimum(self.sigma * np.exp(self.eta_sigma * grad_sigma), 1.0)
        self._samples = None
        return int(np.argsort(losses[:, self.num_types], kind="stable")[0])

    def state_dict(self) -> tuple[dict, dict]:
        """(arrays, JSON-able scalars) for a checkpoint, generator state included."""
        return (
            {"snes_mu": self.mu.copy(), "snes_sigma": self.sigma.copy()},
            {"snes_rng": self.rng.bit_generator.state},
        )

    def load_state(self, arrays: dict, scalars: dict) -> None:
        self.mu = np.array(arrays["snes_mu"], dtype=np.float64)
        self.sigma = np.array(arrays["snes_sigma"], dtype=np.float64)
        self.rng.bit_generator.state = scalars["snes_rng"]
        self._samples = None
