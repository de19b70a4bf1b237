"""Plug-and-play (PnP) and RED priors: a denoiser as a :class:`Regulariser`.

A *denoiser* is any callable ``denoiser(x, sigma) -> torch.Tensor``:

- ``x``: images of shape ``(B, C, H, W)`` (real, or complex for MRI);
- ``sigma``: the noise standard deviation in the units of ``x``, a Python
  float or a tensor of shape ``(B,)`` (one level per image);
- returns the denoised images, same shape, dtype and device as ``x``.

Nothing else about the denoiser is assumed (a network, BM3D, a prox), so the
existing schemes run these priors unchanged:

:class:`DenoiserPrior` (``proximable``)
    The denoiser replaces the proximal map of an implicit prior ``R = lam phi``:
    ``prox(v, gamma) = denoiser(v, sqrt(lam gamma))``, the MAP denoiser of
    ``phi`` for Gaussian noise of variance ``gamma lam``.  In
    :func:`~tomolearn.solvers.admm` this is PnP-ADMM [1]_ (``sigma =
    sqrt(lam / rho)``), in :func:`~tomolearn.solvers.fista` PnP-FISTA / PnP-PGM
    [2]_ (``sigma = sqrt(lam step)``), in :func:`~tomolearn.solvers.hqs`
    PnP-HQS [3]_ (``sigma = sqrt(lam / mu)``); with ``hqs(mu=(mu_first,
    mu_last))`` the noise level decreases geometrically from
    ``sqrt(lam / mu_first)`` to ``sqrt(lam / mu_last)``, DPIR's schedule [3]_.
    With ``rescale=True`` (ADMM, HQS, PDHG) ``rho`` / ``mu`` are relative to
    ``||A||^2``: the denoiser then sees ``sigma = sqrt(lam / (mu ||A||^2))``
    (the rescaled regulariser forwards ``gamma ||A||^{-2}`` to the prox).
:class:`REDPrior` (``smooth``)
    Regularisation by denoising [4]_: ``grad R(x) = lam (x - D(x))`` with a
    fixed noise level ``sigma``, for :func:`~tomolearn.solvers.gradient_descent`
    (pass ``step=``: no Lipschitz constant is known for a general denoiser).

Neither prior is in general the proximal map / gradient of any function, so
the convergence guarantees of the schemes hold only for denoisers that are
(e.g. a prox, or a denoiser with a symmetric Jacobian for RED); the
reported objective is a diagnostic, see each class.

References
----------
.. [1] S. V. Venkatakrishnan, C. A. Bouman and B. Wohlberg, "Plug-and-play
       priors for model based reconstruction", IEEE GlobalSIP, 945-948, 2013.
.. [2] U. S. Kamilov, H. Mansour and B. Wohlberg, "A plug-and-play priors
       approach for solving nonlinear imaging inverse problems", IEEE Signal
       Process. Lett. 24(12), 1872-1876, 2017.
.. [3] K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool and R. Timofte,
       "Plug-and-play image restoration with deep denoiser prior" (DPIR),
       IEEE Trans. Pattern Anal. Mach. Intell. 44(10), 6360-6376, 2022.
.. [4] Y. Romano, M. Elad and P. Milanfar, "The little engine that could:
       regularization by denoising (RED)", SIAM J. Imaging Sci. 10(4),
       1804-1844, 2017.
"""

from __future__ import annotations

import math

import torch

from ._loop import _real_dot
from .regularisers import Regulariser

__all__ = ["DenoiserPrior", "REDPrior"]


# -- checks ----------------------------------------------------------------------------------------
def _positive_number(value, name, owner, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{owner}: {name} ({what}) must be a finite number > 0, got {value!r}")
    return float(value)


def _callable(denoiser, owner):
    if not callable(denoiser):
        raise TypeError(f"{owner}: denoiser must be a callable denoiser(x, sigma) -> tensor, "
                        f"got {type(denoiser).__name__}")
    return denoiser


def _denoise(denoiser, x, sigma, owner):
    """``denoiser(x, sigma)``, checked against the protocol (a tensor shaped and typed as ``x``)."""
    out = denoiser(x, sigma)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{owner}: the denoiser must return a torch.Tensor, "
                        f"got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"{owner}: the denoiser must return images of the input's shape and dtype "
                         f"{tuple(x.shape)} {x.dtype}, got {tuple(out.shape)} {out.dtype}")
    return out


def _per_image_sigma(v, gamma, lam, owner):
    """``sqrt(lam gamma)`` as the protocol's sigma: a float, or a ``(B,)`` tensor for tensor gamma.

    ``gamma`` is a number or a tensor broadcasting to ``(B, C, 1, ...)``; the
    level must be finite and > 0 for every problem and equal across the
    channels of an image (the protocol gives one level per image).
    """
    if not isinstance(gamma, torch.Tensor):
        g = float(gamma)
        sigma = math.sqrt(lam * g) if g > 0 else float("nan")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"{owner}: the prox step gamma must be finite and > 0 (the denoiser's "
                             f"sigma = sqrt(lam * gamma)), got gamma={gamma!r}")
        return sigma
    b, c = v.shape[:2]
    target = (b, c) + (1,) * (v.dim() - 2)
    g = gamma.to(device=v.device, dtype=v.real.dtype)
    try:
        g = torch.broadcast_to(g, target)
    except RuntimeError:
        raise ValueError(f"{owner}: a tensor gamma must broadcast to {target} (one step per "
                         f"problem), got shape {tuple(gamma.shape)}") from None
    sigma = torch.sqrt(lam * g.reshape(b, c))
    bad = ~(torch.isfinite(sigma) & (sigma > 0))
    if bool(bad.any()):
        raise ValueError(f"{owner}: every problem's sigma = sqrt(lam * gamma) must be finite and "
                         f"> 0, got gamma={gamma.detach().reshape(-1).tolist()}")
    if c > 1 and not bool((sigma == sigma[:, :1]).all()):
        raise ValueError(f"{owner}: the denoiser takes one noise level per image (sigma of shape "
                         f"(B,)), but gamma differs across the {c} channels of an image")
    return sigma[:, 0].contiguous()


# -- plug-and-play ---------------------------------------------------------------------------------
class DenoiserPrior(Regulariser):
    """Plug-and-play prior: a denoiser in place of the prox of ``R = lam phi`` [1]_ [2]_ [3]_.

    ``prox(v, gamma) = project(denoiser(v, sqrt(lam * gamma)))``: the prox
    of ``gamma lam phi`` is the MAP denoiser of ``phi`` for Gaussian noise of
    variance ``gamma lam``.  ``v``: (B, C, H, W), real or complex; ``gamma``
    a float or a tensor broadcasting to (B, C, 1, 1) (the denoiser then
    receives a (B,) tensor of levels, equal across the channels of an image).
    Works in :func:`~tomolearn.solvers.fista`, :func:`~tomolearn.solvers.admm`,
    :func:`~tomolearn.solvers.hqs` and :func:`~tomolearn.solvers.pdhg`, with
    or without their ``rescale`` (the inherited ``rescaled(s)`` forwards
    ``gamma s^2`` to this prox, i.e. ``sigma = sqrt(lam gamma s^2)``).

    The implicit prior ``phi`` has no value: ``value(x)`` is zero (``+inf``
    outside the box), so the objective the schemes report is the data term
    only.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma) -> tensor`` (see the module docstring).
    lam : float > 0
        The prior's weight: the denoiser's sigma is ``sqrt(lam * gamma)``.
    lower, upper : float or tensor, optional
        A box applied after the denoiser (e.g. ``lower=0``).
    """

    proximable = True

    def __init__(self, denoiser, lam: float = 1.0, lower=None, upper=None):
        super().__init__(lower, upper)
        self.denoiser = _callable(denoiser, "DenoiserPrior")
        self.lam = _positive_number(lam, "lam", "DenoiserPrior", "the prior's weight")

    def noise_level(self, v, gamma):
        """The denoiser's noise level for ``prox(v, gamma)``: ``sqrt(lam gamma)``, float or (B,)."""
        return _per_image_sigma(v, gamma, self.lam, "DenoiserPrior")

    def _value(self, x):
        """Zeros of shape (B, C, 1, ...): the implicit prior has no value."""
        return super()._value(x)

    def _prox(self, v, gamma):
        return _denoise(self.denoiser, v, self.noise_level(v, gamma), "DenoiserPrior")

    def __repr__(self):
        return f"DenoiserPrior({self.denoiser!r}, lam={self.lam}{self._box_repr()})"


# -- RED -------------------------------------------------------------------------------------------
class REDPrior(Regulariser):
    """Regularisation by denoising [4]_: ``grad R(x) = lam (x - D(x))``, ``D = denoiser(., sigma)``.

    ``value(x) = lam/2 Re <x, x - D(x)>`` per problem (shape (B, C)), RED's
    explicit regulariser.  It is a true objective whose gradient is the one
    above only when the denoiser is locally homogeneous (``D(c x) = c D(x)``)
    with a symmetric Jacobian [4]_; otherwise ``gradient`` is still the RED
    fixed-point operator but the reported objective is only a diagnostic.

    Smooth, not proximable: use :func:`~tomolearn.solvers.gradient_descent`
    (optionally ``nesterov=True``).  No Lipschitz constant is known for a
    general denoiser (``lipschitz = None``), so pass ``step=`` to
    ``gradient_descent`` (``step < 2 / (||A||^2 + L_R)``), or declare a bound
    with ``lipschitz=`` when one is known: ``2 lam`` for a nonexpansive
    denoiser, ``lam`` when ``D``'s Jacobian is symmetric with eigenvalues in
    ``[0, 1]``.

    ``gradient(x)`` and ``value(x)`` at the same tensor share one call of the
    denoiser (a one-entry cache, see :meth:`denoise`): plain gradient descent
    evaluates the gradient at the iterate whose objective it just recorded,
    so it calls the denoiser once per iteration, not twice.

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x, sigma) -> tensor`` (see the module docstring); ``x``: (B, C, H, W).
    lam : float > 0
        The weight of the regulariser.
    sigma : float > 0
        The fixed noise level (units of ``x``) the denoiser is called with; required.
    lower, upper : float or tensor, optional
        A box, projected onto after every gradient step.
    lipschitz : float > 0, optional
        A known Lipschitz constant of ``gradient`` (default ``None``: unknown).
    """

    smooth = True

    def __init__(self, denoiser, lam: float = 1.0, sigma: float = None, lower=None, upper=None, *,
                 lipschitz=None):
        super().__init__(lower, upper)
        self.denoiser = _callable(denoiser, "REDPrior")
        self.lam = _positive_number(lam, "lam", "REDPrior", "the regulariser's weight")
        self.sigma = _positive_number(sigma, "sigma", "REDPrior",
                                      "the denoiser's noise level, in the units of x")
        if lipschitz is not None:
            lipschitz = _positive_number(lipschitz, "lipschitz", "REDPrior",
                                         "a Lipschitz constant of the gradient, or None")
        self.lipschitz = lipschitz
        self._cache = None

    def denoise(self, x):
        """``D(x) = denoiser(x, sigma)``, same shape as ``x``.

        Without autograd (as inside the schemes) the result for the last ``x``
        is kept and reused while ``x`` (same tensor, unmodified), ``sigma``
        and ``denoiser`` are unchanged; with autograd nothing is kept.
        """
        if torch.is_grad_enabled():
            self._cache = None
            return _denoise(self.denoiser, x, self.sigma, "REDPrior")
        c = self._cache
        if c is not None and c[0] is x and c[1] == x._version and c[2] is self.denoiser \
                and c[3] == self.sigma:
            return c[4]
        out = _denoise(self.denoiser, x, self.sigma, "REDPrior")
        self._cache = (x, x._version, self.denoiser, self.sigma, out)
        return out

    def _value(self, x):
        """``lam/2 Re <x, x - D(x)>``, shape (B, C, 1, ...)."""
        return 0.5 * self.lam * _real_dot(x, x - self.denoise(x))

    def gradient(self, x):
        """``lam (x - D(x))``, shape of ``x``."""
        return self.lam * (x - self.denoise(x))

    def __repr__(self):
        return (f"REDPrior({self.denoiser!r}, lam={self.lam}, sigma={self.sigma}"
                f"{self._box_repr()})")
