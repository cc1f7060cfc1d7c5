"""SGD near a minimum as a stochastic differential equation: the quadratic basin and its state-dependent noise.

Near a minimum ``θ*`` write ``u = θ - θ*``. The loss is quadratic, ``L(u) = L* + q(u)`` with the *excess loss*
``q(u) = ½ h |u|²`` (sharpness ``h``, the Hessian's eigenvalue, the same in each of ``dim`` coordinates), and SGD
with learning rate ``η`` is read as the Itô SDE ::

    du = -h u dt + sqrt(η C(u)) dW,        C(u) = c0 + c1 q(u)      (per coordinate)

``c1 = 0`` is Langevin dynamics (constant noise); ``c1 > 0`` makes the noise grow with the loss, quadratically in
the distance to the minimum: the power-law dynamic of Meng et al. (2020). Mori et al. (ICML 2022, Eq. 13) derive
``C(θ) ≈ (2/B) L(θ) H`` for the mean-square loss and batch size ``B``: :meth:`Basin.sgd` builds that case,
``c0 = 2 h L*/B`` and ``c1 = 2 h/B``.
"""

from __future__ import annotations

from dataclasses import dataclass

from reprobook._validate import check_float, check_int


@dataclass(frozen=True)
class Basin:
    """A quadratic basin and SGD's noise in it (module docstring): ``C(u) = c0 + c1 q(u)``, ``q = ½ h |u|²``.

    ``sharpness``: ``h > 0``; ``lr``: ``η > 0`` with ``η h < 2`` (gradient descent on the basin is stable only
    then); ``c0 > 0``: the noise covariance at the minimum; ``c1 >= 0``: its growth with the excess loss;
    ``dim``: the number of coordinates (escape directions).
    """

    sharpness: float
    lr: float
    c0: float
    c1: float = 0.0
    dim: int = 1

    def __post_init__(self) -> None:
        check_float("sharpness", self.sharpness, 0, open_low=True)
        check_float("lr", self.lr, 0, open_low=True)
        if self.lr * self.sharpness >= 2:
            raise ValueError(
                f"lr={self.lr!r} is beyond stability for sharpness={self.sharpness!r}: gradient descent on a "
                f"quadratic basin diverges when lr * sharpness >= 2 (here {self.lr * self.sharpness:.3g})"
            )
        check_float("c0", self.c0, 0, open_low=True)
        check_float("c1", self.c1, 0)
        check_int("dim", self.dim, 1)

    @classmethod
    def sgd(cls, sharpness: float, batch_size: float, lr: float, loss_min: float, dim: int = 1) -> Basin:
        """The basin of SGD on a mean-square loss: ``C = (2/B) L(u) h`` (Mori et al., Eq. 13).

        ``batch_size``: ``B > 0``; ``loss_min``: ``L* > 0``, the loss at the minimum (with ``L* = 0`` the noise
        would vanish there and the minimum would trap every particle).
        """
        check_float("batch_size", batch_size, 0, open_low=True)
        check_float("sharpness", sharpness, 0, open_low=True)
        check_float("loss_min", loss_min, 0, open_low=True)
        return cls(sharpness, lr, c0=2 * sharpness * loss_min / batch_size, c1=2 * sharpness / batch_size, dim=dim)

    @property
    def kind(self) -> str:
        """``"power-law"`` (noise grows with the loss) or ``"Langevin"`` (constant noise)."""
        return "power-law" if self.c1 > 0 else "Langevin"

    def excess_loss(self, distance: float) -> float:
        """``q = ½ h r²`` at distance ``r`` from the minimum."""
        return 0.5 * self.sharpness * distance**2

    def distance(self, barrier: float) -> float:
        """The distance ``r = sqrt(2 ΔL / h)`` at which the excess loss reaches ``barrier`` (``ΔL``)."""
        check_float("barrier", barrier, 0, open_low=True)
        return float((2 * barrier / self.sharpness) ** 0.5)

    def diffusion(self, excess_loss: float) -> float:
        """``s² = η C = η (c0 + c1 q)``: the variance per unit time of each coordinate's noise."""
        return self.lr * (self.c0 + self.c1 * excess_loss)

    @property
    def phi(self) -> float:
        """The stationary exponent: ``p(u) ∝ C(u)^-φ`` with ``φ = 1 + 2 / (η c1)`` (infinite for Langevin).

        For :meth:`sgd`, ``φ = 1 + B / (η h)``: Mori et al., Eq. 18.
        """
        return float("inf") if self.c1 == 0 else 1 + 2 / (self.lr * self.c1)

    @property
    def tail_index(self) -> float:
        """``ν = 2φ - dim``: each coordinate's stationary law is a Student-t with ``ν`` degrees of freedom, so its
        density falls like ``|u|^-(ν+1)`` and moments of order ``>= ν`` diverge (infinite for Langevin)."""
        return 2 * self.phi - self.dim

    @property
    def exit_exponent(self) -> float:
        """``m + 1 - dim/2`` with ``m = φ - 1``: the mean exit time grows like ``(1 + c1 ΔL / c0)`` to this power
        (derived here; for :meth:`sgd` it is Mori et al.'s Eq. 16 in 1-D and Eq. 17 for ``dim`` directions)."""
        return self.phi - self.dim / 2
