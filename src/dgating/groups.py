r"""Partition of the features into penalised groups and unpenalised features.

A :class:`Groups` holds one integer label per feature: ``labels[i] = j`` puts feature ``i`` in
group :math:`G_j` (``0 <= j < J``), and ``labels[i] = -1`` marks an unpenalised, ungated feature
(e.g. an intercept column). Every label ``0 .. J-1`` must occur.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import InvalidParameterError, check_array

__all__ = ["Groups"]


@dataclass(frozen=True, eq=False)
class Groups:
    r"""Feature-to-group map for :math:`w \in \mathbb{R}^p` split into :math:`J` groups.

    Parameters
    ----------
    labels : ndarray of int, shape (n_features,)
        Group label per feature, ``-1`` for unpenalised features, otherwise ``0 .. n_groups-1``
        with no gaps.

    Attributes
    ----------
    n_features : int
        :math:`p`.
    n_groups : int
        :math:`J`.
    sizes : ndarray of int, shape (n_groups,)
        :math:`p_j = |G_j|`.
    penalised : ndarray of bool, shape (n_features,)
        ``labels >= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> g = Groups(np.array([0, 0, 1, -1]))
    >>> g.n_groups, g.sizes.tolist()
    (2, [2, 1])
    >>> g.norms(np.array([3.0, 4.0, -2.0, 7.0])).tolist()
    [5.0, 2.0]
    """

    labels: np.ndarray
    n_features: int = field(init=False)
    n_groups: int = field(init=False)
    sizes: np.ndarray = field(init=False)
    penalised: np.ndarray = field(init=False)
    #: Labels of the penalised features (``labels`` itself when every feature is penalised, so
    #: the per-group reductions below allocate no masked copies in that common case).
    _pen_labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        raw = np.asarray(self.labels)
        if raw.dtype.kind == "f":
            if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
                raise InvalidParameterError(
                    "`groups` must contain integer labels (-1 for unpenalised); got non-integer "
                    "values."
                )
        labels = check_array(raw, "groups", ndim=1, dtype=np.int64)
        if labels.size and labels.min() < -1:
            raise InvalidParameterError(
                f"`groups` labels must be -1 (unpenalised) or >= 0; got {int(labels.min())}."
            )
        present = np.unique(labels[labels >= 0])
        n_groups = int(present.size)
        if n_groups and present[-1] != n_groups - 1:
            # The first missing labels lie below n_groups + 5: never build range(max label).
            candidates = np.arange(min(int(present[-1]) + 1, n_groups + 5))
            missing = np.setdiff1d(candidates, present).tolist()
            raise InvalidParameterError(
                f"`groups` labels must be 0..J-1 with no gaps; got labels up to "
                f"{int(present[-1])} with {missing[:5]} missing."
            )
        labels = labels.copy()
        labels.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "n_features", int(labels.size))
        object.__setattr__(self, "n_groups", n_groups)
        sizes = np.bincount(labels[labels >= 0], minlength=n_groups)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "penalised", labels >= 0)
        object.__setattr__(
            self, "_pen_labels", labels if sizes.sum() == labels.size else labels[labels >= 0]
        )

    @classmethod
    def contiguous(cls, n_groups: int, group_size: int, n_unpenalised: int = 0) -> Groups:
        """Equal contiguous groups, optionally followed by ``n_unpenalised`` free features."""
        labels = np.concatenate(
            [np.repeat(np.arange(n_groups), group_size), -np.ones(n_unpenalised, dtype=np.int64)]
        )
        return cls(labels)

    def members(self, j: int) -> np.ndarray:
        """Indices of the features in group ``j`` (``j = -1``: the unpenalised features)."""
        return np.flatnonzero(self.labels == j)

    def sq_norms(self, w: np.ndarray) -> np.ndarray:
        r""":math:`\|w_j\|_2^2` for every group, shape ``(n_groups,)``; works on ``(..., p)``."""
        w = np.asarray(w)
        idx = self._pen_labels
        sq = np.square(w if idx is self.labels else w[..., self.penalised])
        if w.ndim == 1:
            return np.bincount(idx, weights=sq, minlength=self.n_groups)
        out = np.zeros(w.shape[:-1] + (self.n_groups,))
        np.add.at(out, (..., idx), sq)
        return out

    def norms(self, w: np.ndarray) -> np.ndarray:
        r""":math:`\|w_j\|_2` for every group, shape ``(n_groups,)``."""
        return np.sqrt(self.sq_norms(w))

    def expand(self, per_group: np.ndarray, fill: float = 1.0) -> np.ndarray:
        """Broadcast a ``(..., n_groups)`` array to features; unpenalised features get ``fill``."""
        per_group = np.asarray(per_group, dtype=float)
        if self._pen_labels is self.labels:
            return per_group[..., self.labels]
        out = np.full(per_group.shape[:-1] + (self.n_features,), float(fill))
        out[..., self.penalised] = per_group[..., self._pen_labels]
        return out

    def group_sums(self, v: np.ndarray) -> np.ndarray:
        """Sum of ``v`` over each group, shape ``(n_groups,)`` (unpenalised entries ignored)."""
        v = np.asarray(v)
        weights = v if self._pen_labels is self.labels else v[self.penalised]
        return np.bincount(self._pen_labels, weights=weights, minlength=self.n_groups)
