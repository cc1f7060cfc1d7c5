"""Qi Meng, Shiqi Gong, Wei Chen, Zhi-Ming Ma and Tie-Yan Liu, "Dynamic of Stochastic Gradient Descent with
State-Dependent Noise", arXiv 2020, https://arxiv.org/abs/2006.13719; no official code located. The exact
equations taught here follow Mori, Ziyin, Liu and Ueda, "Power-Law Escape Rate of SGD", ICML 2022
(https://arxiv.org/abs/2107.09133), whose full text the project read. Re-implemented for the book's chapter.

Two labs share the package.

**The SDE lab** (one quadratic basin, many particles):

* :class:`Basin` -- ``L = L* + ½ h |u|²`` with noise covariance ``C = c0 + c1 q(u)``; :meth:`Basin.sgd` is Mori
  et al.'s ``C = (2/B) L h`` (:mod:`~reprobook.powerlaw.dynamics`); :func:`langevin` its constant-noise baseline;
* the exact theory (:mod:`~reprobook.powerlaw.theory`): :func:`stationary_law`, :func:`fit_phi`,
  :func:`mean_exit_time` by quadrature, :func:`exit_time_asymptote`;
* Euler–Maruyama simulation through the fused kernel :func:`reprobook.kernels.sde_exit`
  (:mod:`~reprobook.powerlaw.simulate`): :func:`exit_times`, :func:`stationary_samples`;
* :class:`LabConfig`: every size of the chapter's experiments, a profile default (:mod:`~reprobook.powerlaw.lab`);
* :func:`explorer`, sliders over the theory that need no kernel, and :func:`explorer_figure`, their static figure.

**The real network** (scikit-learn's digits, an MLP), on the surface every reprobook method shares
(``lib/reprobook/METHODS.md``)::

    config = PowerLawConfig()                  # one SGD run: large batches + state-dependent noise
    data = load_data(config)                   # DigitsData, offline
    result = train(config, data)               # PowerLawResult: model, history, test scores, noise power
    scores = evaluate(result.model, data)      # PowerLawScores: accuracy, loss, sharpness (top Hessian eigenvalue)

* the noise measurements (:mod:`~reprobook.powerlaw.measure`): :func:`per_sample_gradients` (``torch.func``),
  :func:`gradient_noise`, :func:`hvp`, :func:`top_eigen`, :func:`noise_profile`, :func:`fit_noise`;
* the baselines (:mod:`~reprobook.powerlaw.baselines`): :func:`small_batch`, :func:`large_batch`,
  :func:`matched_constant` (constant noise at a state-dependent run's average power).
"""

from __future__ import annotations

from reprobook.powerlaw.baselines import langevin, large_batch, matched_constant, small_batch
from reprobook.powerlaw.data import DigitsData, load_data
from reprobook.powerlaw.dynamics import Basin
from reprobook.powerlaw.evaluate import PowerLawScores, evaluate
from reprobook.powerlaw.explorer import explorer, explorer_figure
from reprobook.powerlaw.lab import LabConfig
from reprobook.powerlaw.measure import (
    Eigen,
    NoiseFit,
    NoisePoint,
    NoiseProfile,
    fit_noise,
    gradient_noise,
    hvp,
    noise_profile,
    per_sample_gradients,
    top_eigen,
)
from reprobook.powerlaw.model import MLP, noisy_sgd_step
from reprobook.powerlaw.simulate import ExitTimes, exit_times, stationary_samples
from reprobook.powerlaw.theory import exit_time_asymptote, fit_phi, mean_exit_time, stationary_law
from reprobook.powerlaw.train import NOISES, PowerLawConfig, PowerLawResult, build_model, train

__all__ = [
    "MLP",
    "NOISES",
    "Basin",
    "DigitsData",
    "Eigen",
    "ExitTimes",
    "LabConfig",
    "NoiseFit",
    "NoisePoint",
    "NoiseProfile",
    "PowerLawConfig",
    "PowerLawResult",
    "PowerLawScores",
    "build_model",
    "evaluate",
    "exit_time_asymptote",
    "exit_times",
    "explorer",
    "explorer_figure",
    "fit_noise",
    "fit_phi",
    "gradient_noise",
    "hvp",
    "langevin",
    "large_batch",
    "load_data",
    "matched_constant",
    "mean_exit_time",
    "noise_profile",
    "noisy_sgd_step",
    "per_sample_gradients",
    "small_batch",
    "stationary_law",
    "stationary_samples",
    "top_eigen",
    "train",
]
