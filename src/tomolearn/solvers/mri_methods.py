"""The iterative classical baselines of complex-image (MRI) tasks, registered as methods.

``sense``, ``cs-tv`` and ``cs-wavelet`` run on any linear task with complex 2-D images (the
``"mri"`` task's multi-coil SENSE operator today) through the solver seam: least squares
``1/2 ||A x - y||^2`` (complex, gradients ``A^H (A x - y)``) plus a regulariser, solved by
CGLS or FISTA.  Their ``tuned["mri"]`` parameters were chosen on the validation split by
``scripts/tune_mri.py`` (brain, the ``"mri"`` task's training family, default task: 160 x
160, 8 coils, equispaced 4x).  ``zero-filled`` and ``grappa`` (no solver) are registered by
:mod:`tomolearn.modalities.mri.methods`.

References
----------
.. [1] K. P. Pruessmann, M. Weiger, P. Boernert and P. Boesiger, "Advances in sensitivity
       encoding with arbitrary k-space trajectories", Magn. Reson. Med. 46(4), 638-651, 2001
       (SENSE by conjugate gradients).
.. [2] M. Lustig, D. Donoho and J. M. Pauly, "Sparse MRI: The application of compressed
       sensing for rapid MR imaging", Magn. Reson. Med. 58(6), 1182-1195, 2007.
.. [3] K. T. Block, M. Uecker and J. Frahm, "Undersampled radial MRI with multiple coils.
       Iterative image reconstruction using a total variation constraint", Magn. Reson. Med.
       57(6), 1086-1098, 2007.
"""

from __future__ import annotations

import math

from ..registry import register_method
from . import algebraic
from .fidelities import LeastSquares
from .regularisers import Tikhonov, TotalVariation
from .schemes import fista
from .wavelets import WaveletSparsity

__all__ = []

_REQUIRES = ("linear", "complex", "2d")


def _non_negative(value, name, method):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{method}: {name} must be a non-negative number, got {value!r}")
    return float(value)


def _solver(solve):
    """``recon(y) = solve(y).x`` with ``recon.solve`` (the whole Result, objective history)."""
    def recon(y):
        return solve(y).x

    recon.solve = solve
    return recon


def _build_sense(task, op, device, n_iter=40, damping=0.01):
    """SENSE [1]_: ``(A^H A + damping I) x = A^H y`` by ``n_iter`` CGLS iterations from zero
    (conjugate gradients on the normal equations, complex, exact inner products
    ``Re <a, b>``); the iteration count regularises (early stopping) besides ``damping``."""
    damping = _non_negative(damping, "damping", "sense")
    reg = Tikhonov(damping) if damping > 0 else None
    return _solver(lambda y: algebraic.cgls(op, y, LeastSquares(), reg, n_iter=n_iter))


def _build_cs_tv(task, op, device, lam=5e-4, n_iter=100, inner_iter=10):
    """Compressed sensing with isotropic TV of the complex image [3]_:
    ``min 1/2 ||A x - y||^2 + lam sum sqrt(|dx|^2 + |dy|^2)`` by FISTA, step ``1 / ||A||^2``,
    the TV prox by ``inner_iter`` warm-started FGP iterations; no box (complex images)."""
    tv = TotalVariation(_non_negative(lam, "lam", "cs-tv"), inner_iter=inner_iter)
    return _solver(lambda y: fista(op, y, LeastSquares(), tv, n_iter=n_iter))


def _build_cs_wavelet(task, op, device, lam=5e-4, n_iter=100, wavelet="db4", levels=4):
    """Compressed sensing with wavelet sparsity [2]_: ``min 1/2 ||A x - y||^2 + lam ||W x||_1``
    (orthogonal Daubechies ``wavelet``, up to ``levels`` levels, the approximation band
    unpenalised, complex modulus) by FISTA with complex soft-thresholding."""
    reg = WaveletSparsity(_non_negative(lam, "lam", "cs-wavelet"), wavelet, levels)
    return _solver(lambda y: fista(op, y, LeastSquares(), reg, n_iter=n_iter))


# tuned: the best PSNR of scripts/tune_mri.py's grids on 4 brain validation images (side by
# side: zero-filled 22.68 dB, grappa 23.12, sense 24.04, cs-tv 36.60, cs-wavelet 27.77; on
# ellipses the best cs-tv/cs-wavelet lam was 5e-4)
register_method("sense", _build_sense, requires=_REQUIRES,
                defaults={"n_iter": 40, "damping": 0.01},
                # n_iter 5..40 x damping 0, 0.01, 0.03; undamped CG diverges from the truth
                # after ~10 iterations (noise), damped converges (40 iterations: converged)
                tuned={"mri": {"n_iter": 40, "damping": 0.01}},
                description="SENSE, conjugate gradients on the normal equations")
register_method("cs-tv", _build_cs_tv, requires=_REQUIRES, slow=True,
                defaults={"lam": 2e-3, "n_iter": 100, "inner_iter": 10},
                tuned={"mri": {"lam": 2e-3, "n_iter": 100, "inner_iter": 10}},
                description="compressed sensing, total variation of the complex image, FISTA")
register_method("cs-wavelet", _build_cs_wavelet, requires=_REQUIRES, slow=True,
                defaults={"lam": 1e-3, "n_iter": 100, "wavelet": "db4", "levels": 4},
                tuned={"mri": {"lam": 1e-3, "n_iter": 100, "wavelet": "db4", "levels": 4}},
                description="compressed sensing, l1 of db4 wavelets, FISTA")
