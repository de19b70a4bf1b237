"""The operator protocol: batched linear operators with exact adjoints.

``base`` holds :class:`Operator` and :class:`LinearOperator` (validation, the
autograd function whose backward is the adjoint, composition, norm);
``matrix`` the identity and dense-matrix operators; ``fourier`` the centred orthonormal
2-D DFT (fastMRI's ``fft2c``, used by MRI and by learned k-space networks); ``registry`` the example
operators that the shared test battery runs over.  Operators import no
modality; modalities import this package.
"""

from .base import LinearOperator, Operator, _full_precision  # noqa: F401
from .matrix import Identity, MatrixOperator  # noqa: F401
from .registry import examples, register_example  # noqa: F401

__all__ = ["Operator", "LinearOperator", "Identity", "MatrixOperator", "register_example",
           "examples"]
