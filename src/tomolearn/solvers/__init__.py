"""Reconstruction as data fidelity x regulariser x iteration scheme.

``min_x F(A x; y) + R(x)``, every piece exchangeable:

- :mod:`~tomolearn.solvers.fidelities`: :class:`LeastSquares`,
  :class:`WeightedLeastSquares`, :class:`PoissonLikelihood` (a
  :class:`DataFidelity` gives value, gradient, prox, conjugate prox);
- :mod:`~tomolearn.solvers.regularisers`: :class:`TotalVariation`,
  :class:`Tikhonov`, :class:`Box` / :class:`Positivity`,
  :class:`~tomolearn.solvers.wavelets.WaveletSparsity` (l1 of an orthogonal
  :class:`~tomolearn.solvers.wavelets.Wavelet2D`), sums (a
  :class:`Regulariser` gives value and gradient and/or prox; learned
  regularisers and plug-and-play denoisers plug in here:
  :mod:`~tomolearn.solvers.priors` has :class:`DenoiserPrior` (PnP) and
  :class:`REDPrior` (RED) for any ``denoiser(x, sigma)``);
- :mod:`~tomolearn.solvers.schemes` and :mod:`~tomolearn.solvers.algebraic`:
  :func:`gradient_descent`, :func:`fista`, :func:`pdhg`, :func:`admm`,
  :func:`hqs`, ``algebraic.cgls``, ``algebraic.sirt``, :func:`em`.

Every scheme takes a :class:`~tomolearn.operators.LinearOperator` ``op`` and
data ``y`` of shape ``(B, C, *op.range_shape)`` and treats each ``(b, c)``
as an independent problem (step sizes and inner products are per problem),
so a batch gives the same result per image as when each is run alone.  All
work on CPU and CUDA, float32 and float64, and return a :class:`Result`.
Least squares, CGLS, Tikhonov, TV and the wavelet l1 also take complex images
(MRI): inner products are ``Re <a, b>``, TV is ``sum sqrt(|dx|^2 + |dy|^2)``
over complex differences, thresholds shrink the modulus and keep the phase;
box constraints need real images.  Image and data tensors may differ in rank
(k-space ``(B, C, n_coils, H, W)``).

Stopping: after ``n_iter`` iterations, or earlier when the relative change
``||x_k - x_{k-1}|| / ||x_k||`` of every problem in the batch falls below
``tol``.  A ``callback(k, x, objective)`` is called after every iteration
(``objective`` of shape (B, C)).  An iteration whose objective is not finite
stops the solver with a warning; the last finite iterate is returned.

The classical solvers keep their signatures (:mod:`~tomolearn.solvers.classic`):
``landweber``, ``cgls``, ``tv_fista``, ``tv_pdhg``, ``sirt``, ``mlem``,
``osem``, with ``gradient``, ``divergence``, ``total_variation``,
``tv_prox``, ``least_squares_tv_objective`` and ``poisson_log_likelihood``.
Note that ``tomolearn.solvers.cgls`` and ``.sirt`` are these classical
forms; the scheme forms taking a fidelity / regulariser are
``tomolearn.solvers.algebraic.cgls`` and ``.sirt``.
"""

from . import methods, mri_methods, pet_methods  # noqa: F401  (register the solvers as methods)
from ._loop import Result
from .algebraic import em, subset_operator
from .classic import (cgls, landweber, least_squares_tv_objective, mlem, osem,
                      poisson_log_likelihood, sirt, tv_fista, tv_pdhg)
from .fidelities import DataFidelity, LeastSquares, PoissonLikelihood, WeightedLeastSquares
from .priors import DenoiserPrior, REDPrior
from .regularisers import (Box, Positivity, Regulariser, RegulariserSum, Tikhonov, TotalVariation,
                           divergence, gradient, total_variation, tv_prox)
from .schemes import admm, fista, gradient_descent, hqs, pdhg
from .smooth import SmoothTotalVariation, lbfgs
from .wavelets import Wavelet2D, WaveletSparsity, soft_threshold

__all__ = [
    # classical solvers (stable)
    "Result", "landweber", "cgls", "tv_fista", "tv_pdhg", "sirt", "mlem", "osem",
    "gradient", "divergence", "total_variation", "tv_prox", "least_squares_tv_objective",
    "poisson_log_likelihood",
    # fidelities
    "DataFidelity", "LeastSquares", "WeightedLeastSquares", "PoissonLikelihood",
    # regularisers
    "Regulariser", "Box", "Positivity", "Tikhonov", "TotalVariation", "RegulariserSum",
    "WaveletSparsity", "Wavelet2D", "soft_threshold", "SmoothTotalVariation",
    # plug-and-play and RED priors (a denoiser as a regulariser)
    "DenoiserPrior", "REDPrior",
    # schemes
    "gradient_descent", "fista", "pdhg", "admm", "hqs", "em", "subset_operator", "lbfgs",
]
