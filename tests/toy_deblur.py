"""A toy modality defined only through public extension points: 2-D Gaussian deblurring.

It proves that a new modality costs one folder: an operator with an exact adjoint, a task
(simulation, noise, initial reconstruction, spec), one shift and the registrations.  Imported
by conftest.py so that the shared operator, task and method batteries pick it up.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tomolearn.operators import LinearOperator, register_example
from tomolearn.registry import Task, register_shift, register_task


class GaussianBlur(LinearOperator):
    """Blur ``(B, C, n, n)`` with a normalised Gaussian of ``sigma`` pixels (zero padding)."""

    def __init__(self, size: int, sigma: float):
        super().__init__((size, size), (size, size))
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-t ** 2 / (2 * sigma ** 2))
        k = torch.outer(k, k) / k.sum() ** 2
        self.register_buffer("kernel", k[None, None])
        self.radius = radius

    def _conv(self, x, transpose):
        b, c = x.shape[:2]
        k = self.kernel.to(x.real.dtype if x.is_complex() else x.dtype)
        flat = x.reshape(b * c, 1, *x.shape[2:])
        if x.is_complex():
            return torch.complex(self._conv(x.real, transpose), self._conv(x.imag, transpose))
        f = F.conv_transpose2d if transpose else F.conv2d
        return f(flat, k, padding=self.radius).reshape(x.shape)

    def _forward(self, x):
        return self._conv(x, transpose=False)

    def _adjoint(self, y):
        return self._conv(y, transpose=True)


@dataclass(frozen=True)
class Deblur(Task):
    """Gaussian deblurring of ``size`` x ``size`` images with relative Gaussian noise."""

    size: int = 24
    sigma: float = 1.5
    noise: float = 0.02
    seed: int = 0
    units = "image intensity"

    def operator(self):
        return GaussianBlur(self.size, self.sigma)

    def simulate(self, images, generator=None):
        y = self.operator()(images.double())
        gens = generator if isinstance(generator, (list, tuple)) else [generator] * len(y)
        noise = torch.stack([torch.randn(y.shape[1:], generator=g, dtype=y.dtype) for g in gens])
        return y + self.noise * y.abs().mean(dim=(1, 2, 3), keepdim=True) * noise

    def noise_std(self, y):
        return self.noise * y.detach().double().abs().mean(dim=(1, 2, 3))

    def initial_reconstruction(self, y, op=None):
        return (self.operator() if op is None else op).adjoint(y)


register_task("toy-deblur", Deblur)
register_shift("toy-deblur", "more-blur", lambda t: t.replace(sigma=2.5))
register_example("toy.gaussian-blur")(lambda: GaussianBlur(7, 1.0))
