"""The sizes of the chapter's experiments in one place, each a profile default (:func:`reprobook.pick_default`).

:class:`LabConfig` holds what the chapter simulates and measures besides the SGD runs of
:class:`~reprobook.powerlaw.train.PowerLawConfig` (whose own sizes, ``num_steps`` and ``eval_every``, are profile
defaults too): the SDE lab's particles, time step and horizons, the barriers and sharpnesses, the points of the noise
profiles on the real network, and the seeds of the large-batch experiment. The lead tunes the ``book`` budget here.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprobook._validate import check_float, check_int
from reprobook.profiles import pick_default


@dataclass
class LabConfig:
    """The chapter's sizes (module docstring).

    ``particles``: particles per exit-time simulation; ``stationary_particles`` and ``stationary_time``: particles
    and time units of the run to the stationary law; ``dt``: the Euler–Maruyama time step; ``max_time``: the
    horizon of an exit-time run; ``barriers`` and ``langevin_barriers``: the excess-loss levels simulated for the
    power law and for Langevin (whose exit times grow exponentially, so it stops lower); ``sharpnesses``: the
    sweep at fixed ``sharpness_barrier``; ``profile_points``: distances per noise profile on the network;
    ``profile_radius``: the largest distance; ``seeds``: seeds per system of the large-batch experiment.
    """

    particles: int = pick_default(smoke=600, book=3000, full=20_000)
    stationary_particles: int = pick_default(smoke=4000, book=20_000, full=200_000)
    stationary_time: float = 8.0
    dt: float = pick_default(smoke=0.01, book=0.005, full=0.002)
    max_time: float = 2000.0
    barriers: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    langevin_barriers: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    sharpnesses: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    sharpness_barrier: float = 1.0
    profile_points: int = pick_default(smoke=9, book=15, full=25)
    profile_radius: float = 1.0
    seeds: int = pick_default(smoke=2, book=10, full=20)

    def __post_init__(self) -> None:
        for name in ("particles", "stationary_particles", "profile_points", "seeds"):
            check_int(name, getattr(self, name), 1)
        if self.profile_points < 4:
            raise ValueError(
                f"profile_points must be >= 4 (a quadratic and a constant are fitted), got {self.profile_points}"
            )
        for name in ("stationary_time", "dt", "max_time", "sharpness_barrier", "profile_radius"):
            check_float(name, getattr(self, name), 0, open_low=True)
        for name in ("barriers", "langevin_barriers", "sharpnesses"):
            values = tuple(getattr(self, name))
            if not values:
                raise ValueError(f"{name} must hold at least one value")
            for value in values:
                check_float(name, value, 0, open_low=True)
            setattr(self, name, values)
