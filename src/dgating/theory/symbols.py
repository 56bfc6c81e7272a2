r"""Shared sympy symbols of :mod:`dgating.theory`.

Every derivation builds its expressions from these objects, so results of different functions can
be compared with ``sympy.simplify(a - b) == 0`` (symbols with different assumptions are different
symbols in sympy).

=====================  ==========  ============================================================
symbol                 name        meaning
=====================  ==========  ============================================================
:math:`\lambda`        ``lam``     penalty strength, positive
:math:`\eta`           ``eta``     (S)GD step size, positive
:math:`\|g_j^*\|`      ``g``       norm of :math:`\nabla_{w_j} L_0` at the limit, nonnegative
:math:`r`              ``r``       group norm :math:`\|w_j\|_2`, positive
:math:`t`              ``t``       time along the gradient flow, nonnegative
:math:`\varepsilon`    ``eps``     small expansion parameter, positive
=====================  ==========  ============================================================

Examples
--------
>>> from dgating.theory.symbols import lam
>>> lam.is_positive
True
"""

from __future__ import annotations

import sympy as sp

__all__ = ["eps", "eta", "g", "lam", "r", "t"]

lam = sp.Symbol("lam", positive=True)
eta = sp.Symbol("eta", positive=True)
g = sp.Symbol("g", nonnegative=True)
r = sp.Symbol("r", positive=True)
t = sp.Symbol("t", nonnegative=True)
eps = sp.Symbol("eps", positive=True)
