"""Uncertainty quantification: distribution-free bounds, shift detection, generalisation report.

"How wrong can this reconstruction be?"  Everything here is *distribution-free*:
the guarantees hold for any reconstruction method and any image distribution,
provided the calibration images and the new image are exchangeable (e.g.
i.i.d. draws from the same distribution).  They say nothing under a
distribution shift -- which is why the module also detects shifts and
reports how the bounds hold up on shifted data.

Contents
--------
* :func:`conformal_quantile` -- the finite-sample split-conformal quantile [1]_.
* :class:`PixelIntervals` -- per-pixel intervals ``x_hat +- lam * s`` whose
  expected fraction of miscovered pixels is at most ``alpha``, calibrated by
  conformal risk control [2]_ as in the image-to-image regression scheme of [3]_.
* :class:`ImageErrorBound` -- a bound on a per-image loss (default the RMSE)
  holding with probability ``>= 1 - alpha`` (split conformal [1]_), and
  :func:`conformal_risk_control` for a monotone loss family on a grid [2]_.
* Scale heuristics: :func:`scale_from_ensemble`, :func:`scale_from_residual`,
  :func:`constant_scale`; :func:`split_scale`; how well a map tracks the error:
  :func:`uncertainty_error_correlation`, :func:`spearman`.
* Shift detection: :func:`data_consistency`, :func:`conformal_pvalues` [4]_,
  :func:`auroc`.
* The generalisation study that uses all of these lives in :mod:`tomolearn.studies`.

Conventions: images are torch tensors ``(N, 1, H, W)`` in image units
(attenuation per pixel length; ``[0, 1]`` for the ellipses benchmark), data
``(N, 1, n_angles, n_detectors)``.  ``alpha`` is a miscoverage level in
``(0, 1)``.  Rank computations such as ``ceil((n + 1)(1 - alpha))`` are
evaluated with a 1e-9 tolerance so that decimal levels like ``alpha = 0.3``
give the rank intended by the formula and not one shifted by float rounding.

References
----------
.. [1] A. N. Angelopoulos and S. Bates, "A gentle introduction to conformal
       prediction and distribution-free uncertainty quantification",
       arXiv:2107.07511, 2021.
.. [2] A. N. Angelopoulos, S. Bates, A. Fisch, L. Lei and T. Schuster,
       "Conformal risk control", ICLR 2024. arXiv:2208.02814.
.. [3] A. N. Angelopoulos, A. P. Kohli, S. Bates, M. I. Jordan, J. Malik,
       T. Alshaabi, S. Upadhyayula and Y. Romano, "Image-to-image regression
       with distribution-free uncertainty quantification and applications in
       imaging", ICML 2022. arXiv:2202.05265.
.. [4] V. Vovk, A. Gammerman and G. Shafer, "Algorithmic Learning in a Random
       World", Springer, 2005 (conformal p-values); V. Vovk, "Conditional
       validity of inductive conformal predictors", ACML 2012.
"""

from .conformal import (ImageErrorBound, PixelIntervals, conformal_quantile,  # noqa: F401
                        conformal_risk_control, image_rmse, pixel_ratios)
from .scales import (constant_scale, scale_from_ensemble, scale_from_residual,  # noqa: F401
                     spearman, split_scale, uncertainty_error_correlation)
from .shift import auroc, conformal_pvalues, data_consistency, relative_noise_std  # noqa: F401

__all__ = [
    "conformal_quantile", "conformal_risk_control", "PixelIntervals", "ImageErrorBound",
    "image_rmse", "pixel_ratios", "scale_from_ensemble", "scale_from_residual", "constant_scale",
    "split_scale", "uncertainty_error_correlation", "spearman",
    "data_consistency", "relative_noise_std", "conformal_pvalues", "auroc",
]
