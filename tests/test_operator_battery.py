"""The shared operator battery: every registered example operator runs through it.

A new operator joins by registering a factory with
``tomolearn.operators.register_example``; no new test code is needed.  Operators that
``requires_complex`` (MRI's Fourier sampling) run every check in the complex counterpart of
the float dtypes (float64 -> complex128, float32 -> complex64), with complex scalars in the
linearity check, and must refuse real input.
"""

import pytest
import torch

from tomolearn.operators import examples

EXAMPLES = examples()
NAMES = sorted(EXAMPLES)


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _dtype(op, dtype):
    """``dtype``, or its complex counterpart for an operator that requires complex input."""
    return _COMPLEX.get(dtype, dtype) if op.requires_complex else dtype


def _rand(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


# the NUFFT examples are the slowest (gradgradcheck through finufft): full runs only
@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.slow) if n.startswith("mri.nufft")
                        else n for n in NAMES])
def op(request):
    return EXAMPLES[request.param]()


def test_registry_covers_every_modality():
    assert any(n.startswith("ct.parallel") for n in NAMES)
    assert any(n.startswith("ct.fan") for n in NAMES)
    assert any(n.startswith("mri.") for n in NAMES)
    assert any(EXAMPLES[n]().requires_complex for n in NAMES)
    assert len(NAMES) >= 8


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5),
                                       (torch.complex128, 1e-10)])
def test_dot_product_adjoint(op, dtype, tol):
    dtype = _dtype(op, dtype)
    x = _rand((3, 2) + op.domain_shape, dtype, 1)
    y = _rand((3, 2) + op.range_shape, dtype, 2)
    lhs = torch.vdot(op(x).reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), op.adjoint(y).reshape(-1))
    scale = op(x).norm() * y.norm()
    assert abs(lhs - rhs) / scale < tol


def test_transpose_operator_is_adjoint(op):
    dtype = _dtype(op, torch.float64)
    y = _rand((2, 1) + op.range_shape, dtype, 3)
    torch.testing.assert_close(op.T(y), op.adjoint(y), rtol=0, atol=0)
    x = _rand((2, 1) + op.domain_shape, dtype, 4)
    torch.testing.assert_close(op.T.T(x), op(x), rtol=0, atol=0)


def test_gradcheck_and_gradgradcheck(op):
    dtype = _dtype(op, torch.float64)  # complex double for complex-only operators
    x = _rand((2, 1) + op.domain_shape, dtype, 5).requires_grad_()
    assert torch.autograd.gradcheck(op, (x,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(op, (x,), eps=1e-6, atol=1e-7)
    y = _rand((2, 1) + op.range_shape, dtype, 6).requires_grad_()
    assert torch.autograd.gradcheck(op.adjoint, (y,), eps=1e-6, atol=1e-7)


def test_backward_is_the_adjoint(op):
    dtype = _dtype(op, torch.float64)
    x = _rand((2, 1) + op.domain_shape, dtype, 7).requires_grad_()
    y = _rand((2, 1) + op.range_shape, dtype, 8)
    # Re <y, A x>: its gradient (torch's convention for complex x too) is A^H y
    torch.real((op(x) * y.conj()).sum()).backward()
    torch.testing.assert_close(x.grad, op.adjoint(y), rtol=1e-12, atol=1e-12)


def test_linearity(op):
    dtype = _dtype(op, torch.float64)
    x1 = _rand((2, 1) + op.domain_shape, dtype, 9)
    x2 = _rand((2, 1) + op.domain_shape, dtype, 10)
    a, b = (2.5 - 1.5j, 0.7 + 0.4j) if dtype.is_complex else (2.5, 0.7)  # complex-linear
    torch.testing.assert_close(op(a * x1 - b * x2), a * op(x1) - b * op(x2),
                               rtol=1e-10, atol=1e-10)


def test_batch_equals_loop(op):
    dtype = _dtype(op, torch.float64)
    x = _rand((4, 3) + op.domain_shape, dtype, 11)
    y = _rand((4, 3) + op.range_shape, dtype, 12)
    loop_fwd = torch.stack([torch.stack([op(x[b:b + 1, c:c + 1])[0, 0] for c in range(3)])
                            for b in range(4)])
    loop_adj = torch.stack([torch.stack([op.adjoint(y[b:b + 1, c:c + 1])[0, 0] for c in range(3)])
                            for b in range(4)])
    torch.testing.assert_close(op(x), loop_fwd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.adjoint(y), loop_adj, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_dtype_and_device_preserved(op, dtype):
    dtype = _dtype(op, dtype)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        x = _rand((1, 1) + op.domain_shape, dtype, 13).to(device)
        y = op(x)
        assert y.dtype == dtype and y.device.type == device
        assert tuple(y.shape) == (1, 1) + op.range_shape
        z = op.adjoint(y)
        assert z.dtype == dtype and z.device.type == device


def test_norm_matches_largest_singular_value(op):
    dense = op.to_dense(dtype=_dtype(op, torch.float64))
    sigma = torch.linalg.matrix_norm(dense, ord=2).item()
    assert op.norm() == pytest.approx(sigma, rel=1e-4)
    assert op.norm() == op.norm()  # cached and reproducible


def test_to_dense_matches_application(op):
    dtype = _dtype(op, torch.float64)
    dense = op.to_dense(dtype=dtype)
    x = _rand((1, 1) + op.domain_shape, dtype, 14)
    torch.testing.assert_close(op(x).reshape(-1), dense @ x.reshape(-1), rtol=1e-10, atol=1e-10)


def test_bad_input_is_rejected_with_shape_in_message(op):
    dtype = _dtype(op, torch.float64)
    wrong = (1, 1) + tuple(s + 1 for s in op.domain_shape)
    with pytest.raises(ValueError, match=r"expects shape \(B, C"):
        op(torch.zeros(wrong, dtype=dtype))
    with pytest.raises(ValueError, match="got"):
        op(torch.zeros(op.domain_shape, dtype=dtype))  # missing batch dims
    with pytest.raises(TypeError, match="floating-point"):
        op(torch.zeros((1, 1) + op.domain_shape, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        op([0.0])
    with pytest.raises(ValueError, match=r"expects shape"):
        op.adjoint(torch.zeros((1, 1) + op.domain_shape + (2,), dtype=dtype))
    if op.requires_complex:
        for real in (torch.float32, torch.float64):
            with pytest.raises(TypeError, match="expects complex input"):
                op(torch.zeros((1, 1) + op.domain_shape, dtype=real))
            with pytest.raises(TypeError, match="adjoint expects complex input"):
                op.adjoint(torch.zeros((1, 1) + op.range_shape, dtype=real))


def test_an_empty_batch_gives_an_empty_result(op):
    for b, c in ((0, 1), (2, 0)):
        x = torch.zeros((b, c) + op.domain_shape, dtype=_dtype(op, torch.float64))
        y = op(x)
        assert y.shape == (b, c) + op.range_shape
        assert op.adjoint(y).shape == x.shape


def test_an_operator_that_requires_complex_input_refuses_real_data():
    from tomolearn.operators import MatrixOperator

    class ComplexOnly(MatrixOperator):
        requires_complex = True

    m = torch.randn(3, 4, dtype=torch.complex128)
    op = ComplexOnly(m)
    with pytest.raises(TypeError, match=r"expects complex input .* got torch.float64"):
        op(torch.zeros(1, 1, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="adjoint expects complex input"):
        op.adjoint(torch.zeros(1, 1, 3, dtype=torch.float32))
    assert op(torch.ones(1, 1, 4, dtype=torch.complex128)).shape == (1, 1, 3)
