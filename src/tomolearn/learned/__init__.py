"""Learned reconstruction networks.

Every reconstructor here is a ``torch.nn.Module`` that is given a linear
forward operator (:class:`tomolearn.operators.LinearOperator`) at construction
and a batch of measurements ``y`` of shape ``(B, 1, *op.range_shape)`` in
``forward``; it returns images of shape ``(B, 1, *op.domain_shape)``.  Apart
from :class:`FBPConvNet`, whose initial reconstruction is a filtered
back-projection, none of them knows which modality the operator belongs to:
they only use ``op(x)``, ``op.adjoint(y)`` and ``op.norm()``.  :class:`VarNet` also needs
the multi-coil structure of the data, which it reads from the operator through a small
protocol (``op.mask``, ``op.n_coils``; see :mod:`.varnet`), not from a modality module.

The operator is *bound* to a model, not registered as a sub-module: the
``state_dict`` holds only learned weights, and :meth:`with_operator` returns a
copy of the weights bound to another operator of the same kind and image
shape (e.g. more projection angles: all convolutions are size-agnostic).

Models
------
:class:`UNet`
    Plain image-to-image U-Net (used by :class:`FBPConvNet`).
:class:`FBPConvNet`
    FBP followed by a residual U-Net (Jin et al. 2017).
:class:`LearnedGradientDescent`
    Unrolled gradient descent with a learned update per iteration
    (Adler & Öktem 2017).
:class:`LearnedPrimalDual`
    Learned primal-dual (Adler & Öktem 2018), as published.
:class:`MoDL`
    A shared CNN denoiser alternating with a conjugate-gradient data-consistency step
    (Aggarwal, Mani & Jacob 2019); any operator, real or complex.
:class:`FBSEMNet`
    Unrolled MAP-EM whose prior is a shared residual CNN (FBSEM-Net, Mehranian & Reader
    2021); Poisson data of a non-negative operator with an additive background (PET).
:class:`VarNet`
    End-to-end variational network with sensitivity estimation (after Sriram et al. 2020);
    multi-coil Cartesian MRI operators (the protocol of :mod:`.varnet`).
:class:`SkipNet`, :class:`EducatedDIPNet`
    The deep image prior's encoder-decoder (fitted per measurement by the methods ``dip``
    and ``dip-tv``), and the educated warm start's network from the first guess (Barbano
    et al. 2022), pretrained here and fine-tuned per measurement.
:class:`DnCNN`, :class:`DRUNet`
    Denoisers with a noise-level input (:class:`ImageDenoiser`), the priors of
    plug-and-play and RED (:mod:`tomolearn.solvers.priors`).
:class:`AdversarialRegulariser`, :class:`ConvexAdversarialRegulariser`
    Learned regularisers trained as critics between truths and first guesses (Lunz et al.
    2018; input-convex, Mukherjee et al. 2021); ``forward`` solves the variational problem.
:class:`DeepEnsemble`
    K independently trained reconstructors; mean and per-member outputs
    (Lakshminarayanan et al. 2017).

Modules
-------
``base``
    :class:`_Reconstructor`, the operator-bound base class (binding,
    compatibility checks, input checks, the operator's first guess,
    sub-batched CPU inference).
``blocks``
    Building blocks shared by the networks (parameter count, the
    convolution block of the unrolled methods).
``unet``, ``fbpconvnet``, ``lgd``, ``lpd``, ``modl``, ``fbsem``, ``varnet``, ``dip``,
``denoisers``, ``adversarial``, ``ensemble``
    One model each.
"""

from .adversarial import AdversarialRegulariser, ConvexAdversarialRegulariser
from .base import _Reconstructor  # noqa: F401
from .denoisers import DnCNN, DRUNet, ImageDenoiser
from .dip import EducatedDIPNet, SkipNet  # importing dip registers the methods dip, dip-tv
from .ensemble import DeepEnsemble
from .fbsem import FBSEMNet
from .fbpconvnet import FBPConvNet
from .lgd import LearnedGradientDescent
from .lpd import LearnedPrimalDual
from .modl import MoDL
from .unet import UNet
from .varnet import VarNet

__all__ = ["UNet", "FBPConvNet", "LearnedGradientDescent", "LearnedPrimalDual", "MoDL", "VarNet",
           "FBSEMNet", "SkipNet",
           "EducatedDIPNet", "ImageDenoiser", "DnCNN", "DRUNet", "AdversarialRegulariser",
           "ConvexAdversarialRegulariser", "DeepEnsemble"]
