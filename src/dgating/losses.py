r"""Smooth data-fitting terms :math:`L_0`.

A :class:`Loss` acts on the linear predictor :math:`z = Xw` and returns per-sample derivatives, so
that a :class:`~dgating.problem.GroupedProblem` can form
:math:`\nabla L_0(w) = X^\top \ell'(z)` and :math:`\nabla^2 L_0(w) v = X^\top (\ell''(z) \odot Xv)`.
The :math:`1/n` factor is part of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit

from ._validation import InvalidParameterError, check_choice

__all__ = ["LOSSES", "LogisticLoss", "Loss", "SquaredLoss", "get_loss"]


class Loss:
    """Interface of a loss on the linear predictor; see :class:`SquaredLoss`."""

    name: str

    def check_targets(self, y: np.ndarray) -> None:
        """Raise if ``y`` is not a valid target vector for this loss."""

    def value(self, z: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def derivative(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Derivative of :meth:`value` with respect to each ``z_i``, shape ``(n_samples,)``."""
        raise NotImplementedError

    def curvature(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`value` with respect to each ``z_i``."""
        raise NotImplementedError

    def curvature_bound(self, n_samples: int) -> float:
        """Upper bound on :meth:`curvature` over all ``z``."""
        raise NotImplementedError


@dataclass(frozen=True)
class SquaredLoss(Loss):
    r"""Squared error :math:`L_0 = \frac{1}{2n} \|y - z\|_2^2`.

    Examples
    --------
    >>> import numpy as np
    >>> SquaredLoss().value(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    1.25
    """

    name: str = "squared"

    def value(self, z: np.ndarray, y: np.ndarray) -> float:
        r = y - z
        return float(r @ r) / (2 * y.shape[-1])

    def derivative(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (z - y) / y.shape[-1]

    def curvature(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.full_like(z, 1.0 / y.shape[-1])

    def curvature_bound(self, n_samples: int) -> float:
        return 1.0 / n_samples


@dataclass(frozen=True)
class LogisticLoss(Loss):
    r"""Logistic loss :math:`L_0 = \frac{1}{n} \sum_i \log(1 + e^{-y_i z_i})`, :math:`y_i = \pm 1`.

    Examples
    --------
    >>> import numpy as np
    >>> round(LogisticLoss().value(np.zeros(2), np.array([1.0, -1.0])), 6)
    0.693147
    """

    name: str = "logistic"

    def check_targets(self, y: np.ndarray) -> None:
        bad = ~np.isin(y, (-1.0, 1.0))
        if np.any(bad):
            raise InvalidParameterError(
                f"`y` must contain only -1 and +1 for the logistic loss; got {int(bad.sum())} "
                f"other values (e.g. {float(y[bad][0])})."
            )

    def value(self, z: np.ndarray, y: np.ndarray) -> float:
        return float(-np.sum(log_expit(y * z))) / y.shape[-1]

    def derivative(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return -y * expit(-y * z) / y.shape[-1]

    def curvature(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = expit(y * z)
        return s * (1.0 - s) / y.shape[-1]

    def curvature_bound(self, n_samples: int) -> float:
        return 0.25 / n_samples


LOSSES: dict[str, Loss] = {"squared": SquaredLoss(), "logistic": LogisticLoss()}


def get_loss(loss: str | Loss) -> Loss:
    """The :class:`Loss` named ``loss`` (``"squared"`` or ``"logistic"``), or ``loss`` itself."""
    if isinstance(loss, Loss):
        return loss
    return LOSSES[check_choice(loss, "loss", LOSSES)]
