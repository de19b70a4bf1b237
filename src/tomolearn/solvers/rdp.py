"""The relative difference prior (RDP) of Nuyts et al. [1]_, a smooth edge-preserving penalty.

For non-negative 2-D images ``x`` (``(B, C, H, W)``, every ``(b, c)`` its own problem)::

    R(x) = weight * 1/2 sum_j sum_{k in N_j} w_jk kappa_j kappa_k
           (x_j - x_k)^2 / (x_j + x_k + gamma |x_j - x_k| + epsilon)

with ``N_j`` the 8-neighbourhood of voxel ``j`` and inverse-distance weights ``w_jk`` (1 for
the 4 direct neighbours, ``1/sqrt 2`` for the diagonals), the form of STIR's
``RelativeDifferencePrior`` [2]_ (the ``1/2`` counts every unordered pair once) and of the
clinical Q.Clear reconstruction (GE), which maximises the Poisson log-likelihood minus
``beta R`` by BSREM [3]_ [4]_.  ``gamma >= 0`` sets the edge preservation (larger: less
smoothing of large relative differences; Q.Clear uses ``gamma = 2`` [4]_), ``epsilon > 0``
keeps the penalty differentiable where both voxels are zero, ``kappa`` (optional,
non-negative, broadcasting to the images) gives spatially varying strength as in Fessler's
certainty-based penalties.

The gradient of a pair term ``f(a, b) = (a - b)^2 / (a + b + gamma |a - b| + epsilon)`` is::

    df/da = (a - b) (a + 3 b + gamma |a - b| + 2 epsilon) / (a + b + gamma |a - b| + epsilon)^2

(``f`` is symmetric, so ``df/db(a, b) = df/da(b, a)``).  ``R`` is zero on constant images,
invariant under a flip of the image (symmetric neighbourhood) and, for ``epsilon = 0``,
homogeneous of degree one (``R(c x) = c R(x)``).  Defined for ``x >= 0``; the class carries an
optional box (default ``lower = 0`` is *not* imposed, pass it or add :class:`Positivity`).

References
----------
.. [1] J. Nuyts, D. Beque, P. Dupont and L. Mortelmans, "A concave prior penalizing relative
       differences for maximum-a-posteriori reconstruction in emission tomography", IEEE Trans.
       Nucl. Sci. 49(1), 56-60, 2002.
.. [2] K. Thielemans et al., "STIR: software for tomographic image reconstruction release 2",
       Phys. Med. Biol. 57(4), 867-883, 2012; ``RelativeDifferencePrior.h`` (penalty with
       ``kappa``, inverse-distance weights, ``gamma``, ``epsilon``).
.. [3] S. Ahn and J. A. Fessler, "Globally convergent image reconstruction for emission
       tomography using relaxed ordered subsets algorithms", IEEE Trans. Med. Imaging 22(5),
       613-626, 2003 (BSREM).
.. [4] S. Ahn, S. G. Ross, E. Asma, J. Miao, X. Jin, L. Cheng, S. D. Wollenweber and
       R. M. Manjeshwar, "Quantitative comparison of OSEM and penalized likelihood image
       reconstruction using relative difference penalties for clinical PET", Phys. Med. Biol.
       60(15), 5733-5751, 2015.
"""

from __future__ import annotations

import copy
import math

import torch

from ._loop import _sum
from .regularisers import Regulariser, _weight

__all__ = ["RelativeDifferencePrior", "NEIGHBOURS"]

#: the four offsets ``(dy, dx)`` that visit every unordered pair of 8-neighbours once, with
#: their inverse-distance weights
NEIGHBOURS = (((0, 1), 1.0), ((1, 0), 1.0), ((1, 1), 1.0 / math.sqrt(2.0)),
              ((1, -1), 1.0 / math.sqrt(2.0)))


def _pair_slices(dy: int, dx: int):
    """``(first, second)`` index tuples over the last two dims: ``x[first]`` and ``x[second]``
    are the two ends of every pair at offset ``(dy, dx)`` (``dy >= 0``)."""
    rows_a, rows_b = slice(0, -dy if dy else None), slice(dy, None)
    if dx >= 0:
        cols_a, cols_b = slice(0, -dx if dx else None), slice(dx, None)
    else:
        cols_a, cols_b = slice(-dx, None), slice(0, dx)
    return (..., rows_a, cols_a), (..., rows_b, cols_b)


class RelativeDifferencePrior(Regulariser):
    """``weight * RDP(x)`` on the last two dims (see the module docstring); smooth.

    Parameters
    ----------
    weight : float >= 0
        The penalty strength ``beta``.
    gamma : float >= 0
        Edge-preservation parameter.
    epsilon : float > 0 or tensor
        Added to the denominator; a tensor broadcasting to ``(B, C, 1, 1)`` gives one value
        per problem (e.g. a fraction of each image's maximum).
    kappa : tensor, optional
        Non-negative spatial weights broadcasting to the images (``None``: ones).
    lower, upper : optional box (e.g. ``lower=0``).
    """

    smooth = True

    def __init__(self, weight: float, gamma: float = 2.0, epsilon=1e-6, kappa=None, lower=None,
                 upper=None):
        super().__init__(lower, upper)
        self.weight = _weight(weight, "RelativeDifferencePrior")
        self.gamma = _weight(gamma, "RelativeDifferencePrior (gamma)")
        if isinstance(epsilon, torch.Tensor):
            if not torch.isfinite(epsilon).all() or (epsilon <= 0).any():
                raise ValueError("RelativeDifferencePrior: epsilon must be finite and positive")
        elif isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or \
                not math.isfinite(epsilon) or epsilon <= 0:
            raise ValueError(f"RelativeDifferencePrior: epsilon must be a positive number or "
                             f"tensor, got {epsilon!r}")
        self.epsilon = epsilon
        if kappa is not None:
            kappa = torch.as_tensor(kappa)
            if not torch.isfinite(kappa).all() or (kappa < 0).any():
                raise ValueError("RelativeDifferencePrior: kappa must be finite and non-negative")
        self.kappa = kappa

    def check(self, x):
        super().check(x)
        if x.is_complex() or x.dim() != 4:
            raise ValueError("RelativeDifferencePrior needs real images (B, C, H, W), got "
                             f"{x.dtype} of shape {tuple(x.shape)}")

    def _eps(self, x):
        e = self.epsilon
        return e.to(dtype=x.dtype, device=x.device) if isinstance(e, torch.Tensor) else e

    def _pairs(self, x):
        """Yield ``(first, second, a, b, w)`` per offset: the slices, the pair ends and the
        weights ``w_jk kappa_j kappa_k``."""
        kappa = None if self.kappa is None else \
            self.kappa.to(dtype=x.dtype, device=x.device).expand_as(x)
        for (dy, dx), w in NEIGHBOURS:
            first, second = _pair_slices(dy, dx)
            weight = w if kappa is None else w * kappa[first] * kappa[second]
            yield first, second, x[first], x[second], weight

    def _value(self, x):
        eps, out = self._eps(x), 0.0
        for _, _, a, b, w in self._pairs(x):
            d = a - b
            out = out + _sum(w * d * d / (a + b + self.gamma * d.abs() + eps))
        if not isinstance(out, torch.Tensor):  # images with a single voxel
            out = x.new_zeros(x.shape[:2] + (1, 1))
        return self.weight * out

    def gradient(self, x):
        eps, g = self._eps(x), torch.zeros_like(x)
        for first, second, a, b, w in self._pairs(x):
            d = a - b
            ad = self.gamma * d.abs()
            inv = 1.0 / (a + b + ad + eps) ** 2
            g[first] += w * d * (a + 3 * b + ad + 2 * eps) * inv
            g[second] -= w * d * (b + 3 * a + ad + 2 * eps) * inv
        return self.weight * g

    def rescaled(self, scale):
        out = copy.copy(self)
        out.weight = self.weight * scale * scale
        return out

    def __repr__(self):
        eps = "tensor" if isinstance(self.epsilon, torch.Tensor) else self.epsilon
        return (f"RelativeDifferencePrior(weight={self.weight}, gamma={self.gamma}, epsilon={eps}"
                f"{', kappa' if self.kappa is not None else ''}{self._box_repr()})")
