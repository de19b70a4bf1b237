"""Learned regularisers trained adversarially: the adversarial regulariser (AR, Lunz, Oktem &
Schonlieb 2018) and the adversarial convex regulariser (ACR, Mukherjee et al. 2021).

A network ``R_theta(x)`` (one number per image) is trained as a critic between the
distribution of ground truths (``R`` small) and that of the operator's first guesses
``x_n = op.initial_reconstruction(y)`` (FBP for CT: ``R`` large), with the Wasserstein loss
and a one-sided gradient penalty [1]_:

    E R(x) - E R(x_n) + mu E (||grad R(x_t)|| - 1)_+^2,   x_t = t x + (1 - t) x_n, t ~ U(0, 1)

so that ``R`` is about 1-Lipschitz and grows along the direction from the truths to the
artefacts.  Reconstruction solves the variational problem

    min_x  1/2 ||A x - (y - b)||^2 + lam R(x)

by gradient descent from ``x_n`` with Armijo backtracking (the objective never increases),
``b`` the operator's additive background.  :meth:`training_loss` is the critic loss, which
``tomolearn train`` uses instead of a reconstruction loss; ``forward`` (the reconstruction)
is what validation scores.

The ACR's network is input-convex [2]_: hidden-to-hidden convolution weights are kept
non-negative (clamped in the forward pass), activations are convex and non-decreasing
(leaky ReLU), the output is a mean over pixels, plus ``rho ||x||^2 / 2`` (a small learned
``rho >= 0``): ``R`` is convex, so the variational problem is convex and the descent
converges to its minimiser.

Images may be complex (two channels); the gradient of ``R`` is taken on those channels.

References
----------
.. [1] S. Lunz, O. Oktem and C.-B. Schonlieb, "Adversarial regularizers in inverse problems",
       NeurIPS 2018.
.. [2] S. Mukherjee, S. Dittmer, Z. Shumaylov, S. Lunz, O. Oktem and C.-B. Schonlieb,
       "Learned convex regularizers for inverse problems", arXiv:2008.02839, 2021 (ACR).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..solvers import LeastSquares
from .base import _Reconstructor

__all__ = ["AdversarialRegulariser", "ConvexAdversarialRegulariser", "critic_loss"]


def critic_loss(regulariser, truth: torch.Tensor, artefact: torch.Tensor, mu: float = 10.0,
                generator=None) -> torch.Tensor:
    """The adversarial critic loss of [1]_ for a ``regulariser(h) -> (B,)`` on real-channel
    images ``truth`` and ``artefact`` ``(B, c, H, W)`` (see the module docstring); scalar."""
    t = torch.rand((truth.shape[0], 1, 1, 1), generator=generator, dtype=truth.dtype,
                   device="cpu").to(truth.device)
    between = (t * truth + (1 - t) * artefact).detach().requires_grad_(True)
    grad, = torch.autograd.grad(regulariser(between).sum(), between, create_graph=True)
    norms = grad.reshape(grad.shape[0], -1).norm(dim=1)
    penalty = ((norms - 1).clamp_min(0) ** 2).mean()
    return regulariser(truth).mean() - regulariser(artefact).mean() + mu * penalty


class _VariationalRegulariser(_Reconstructor):
    """What AR and ACR share: the operator binding, the critic training loss and the
    variational reconstruction by backtracking gradient descent."""

    def _setup(self, op, lam, n_iter, mu):
        self._bind(op)
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise ValueError(f"n_iter must be an int >= 0, got {n_iter!r}")
        if not (math.isfinite(mu) and mu >= 0):
            raise ValueError(f"mu (the gradient penalty weight) must be finite and >= 0, got "
                             f"{mu!r}")
        self.lam, self.n_iter, self.mu = float(lam), int(n_iter), float(mu)

    def _rebind(self) -> None:
        self.operator_norm = float(self.op.norm())

    def regulariser(self, h: torch.Tensor) -> torch.Tensor:
        """``R(h)`` per image, ``(B,)``, of real-channel images ``h`` ``(B, c, H, W)``."""
        raise NotImplementedError

    def training_loss(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The critic loss between the truths ``x`` and the first guesses from ``y``."""
        with torch.no_grad():
            artefact = self.image_to_channels(self.initial(y))
        return critic_loss(self.regulariser, self.image_to_channels(x).to(artefact.dtype),
                           artefact, self.mu)

    def objective(self, x: torch.Tensor, y: torch.Tensor, lam=None) -> torch.Tensor:
        """``1/2 ||A x - (y - b)||^2 + lam R(x)`` per image, ``(B,)``."""
        lam = self.lam if lam is None else float(lam)
        data = LeastSquares().value_at(self.op(x), self._net(y)).sum(1)  # (B, 1) -> (B,)
        return data + lam * self.regulariser(self.image_to_channels(x))

    def _net(self, y):
        return y - self.op.background_of(y)

    def reconstruct(self, y: torch.Tensor, lam=None, n_iter=None, callback=None) -> torch.Tensor:
        """Gradient descent on :meth:`objective` from the first guess: ``n_iter`` steps, each
        with Armijo backtracking per image (start ``1 / ||A||^2``, halved until the objective
        decreases by ``step |grad|^2 / 2``; doubled after an accepted step).
        ``callback(k, objective)`` after each step, ``objective`` ``(B,)``."""
        self._check_y(y)
        lam = self.lam if lam is None else float(lam)
        n_iter = self.n_iter if n_iter is None else int(n_iter)
        with torch.inference_mode(False), torch.enable_grad():
            y = y.clone()
            x = self.initial(y).detach().clone()
            step = torch.full((y.shape[0],), 1.0 / self.operator_norm ** 2, dtype=torch.float64)
            for k in range(n_iter):
                x = x.detach().requires_grad_(True)
                value = self.objective(x, y, lam)
                grad, = torch.autograd.grad(value.sum(), x)
                value, grad, x = value.detach(), grad.detach(), x.detach()
                g2 = torch.view_as_real(grad).pow(2).reshape(x.shape[0], -1).sum(1) \
                    if grad.is_complex() else grad.pow(2).reshape(x.shape[0], -1).sum(1)
                real = x.real.dtype if x.is_complex() else x.dtype
                new_x, done = x.clone(), torch.zeros(x.shape[0], dtype=torch.bool)
                for _ in range(40):  # halve each image's step until its objective decreases
                    s = step.to(device=x.device, dtype=real)
                    trial_x = x - s.view(-1, 1, 1, 1) * grad
                    with torch.no_grad():
                        trial = self.objective(trial_x, y, lam)
                    ok = ((trial <= value - 0.5 * s * g2).cpu() & ~done)
                    new_x[ok.to(x.device)] = trial_x[ok.to(x.device)]
                    done |= ok
                    if bool(done.all()):
                        break
                    step = torch.where(done, step, step / 2)
                x = new_x
                step = torch.where(done, step * 2, step)
                if callback is not None:
                    with torch.no_grad():
                        callback(k, self.objective(x, y, lam))
        return x.detach()

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(y)


class _Critic(nn.Sequential):
    """Lunz et al.'s regulariser network, size-agnostic: six 5x5 convolutions (16, 32, 32, 64,
    64, 128 times ``channels / 16``; strides 1, 2, 1, 2, 1, 2) with leaky ReLU (0.1), a global
    average, and a linear map to one number per image."""

    def __init__(self, c: int, channels: int = 16):
        widths = [channels, 2 * channels, 2 * channels, 4 * channels, 4 * channels,
                  8 * channels]
        mods, prev = [], c
        for w, stride in zip(widths, (1, 2, 1, 2, 1, 2)):
            mods += [nn.Conv2d(prev, w, 5, stride=stride, padding=2), nn.LeakyReLU(0.1)]
            prev = w
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(prev, 1)]
        super().__init__(*mods)


class AdversarialRegulariser(_VariationalRegulariser):
    """The adversarial regulariser (AR) [1]_: a convolutional critic ``R``, trained by
    :meth:`training_loss`; ``forward(y)`` the variational reconstruction.

    Parameters
    ----------
    op : LinearOperator
    channels : int
        Width of the critic's first layer (16 in [1]_).
    lam : float
        Weight of ``R`` in the variational problem (choose it on validation images).
    n_iter : int
        Gradient-descent steps of the reconstruction.
    mu : float
        Gradient-penalty weight of the critic loss (10 in [1]_).
    """

    def __init__(self, op, channels: int = 16, lam: float = 1.0, n_iter: int = 100,
                 mu: float = 10.0):
        super().__init__()
        self._setup(op, lam, n_iter, mu)
        self.critic = _Critic(self.image_channels, channels)

    def regulariser(self, h):
        return self.critic(h)[:, 0]


class ConvexAdversarialRegulariser(_VariationalRegulariser):
    """The adversarial convex regulariser (ACR) [2]_: an input-convex convolutional network
    plus ``rho ||x||^2 / 2``.

    ``z_1 = act(U_0 x)``, ``z_{k+1} = act(W_k^+ z_k + U_k x)`` for ``k < layers``
    (``W^+`` the clamped non-negative weights, ``act`` leaky ReLU 0.2, 5x5 convolutions of
    ``channels``), ``R(x) = mean_pixels(W_out^+ z) + rho ||x||^2 / 2`` with ``rho =
    softplus(rho_raw)``.  Parameters as :class:`AdversarialRegulariser`.
    """

    def __init__(self, op, channels: int = 16, layers: int = 5, lam: float = 1.0,
                 n_iter: int = 100, mu: float = 10.0):
        super().__init__()
        self._setup(op, lam, n_iter, mu)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        c = self.image_channels
        self.inputs = nn.ModuleList(nn.Conv2d(c, channels, 5, padding=2)
                                    for _ in range(layers))
        self.hidden = nn.ParameterList(
            nn.Parameter(torch.rand(channels, channels, 5, 5) * 0.01) for _ in range(layers - 1))
        self.out = nn.Parameter(torch.rand(1, channels, 1, 1) * 0.1)
        self.rho_raw = nn.Parameter(torch.tensor(-6.0))  # rho about 2.5e-3 at the start

    @property
    def rho(self) -> torch.Tensor:
        """The strong-convexity weight ``softplus(rho_raw) >= 0``."""
        return F.softplus(self.rho_raw)

    def regulariser(self, h):
        z = F.leaky_relu(self.inputs[0](h), 0.2)
        for u, w in zip(self.inputs[1:], self.hidden):
            z = F.leaky_relu(F.conv2d(z, w.clamp_min(0), padding=2) + u(h), 0.2)
        convex = F.conv2d(z, self.out.clamp_min(0)).mean(dim=(1, 2, 3))
        return convex + 0.5 * self.rho * h.pow(2).reshape(h.shape[0], -1).sum(1)
