"""The shared method battery: every registered method on a small instance of every registered
task it supports.  A new method or task joins by being registered, not by new test code.

Classical methods run on the task kind's ``tiny()`` instance; learned methods run on the task
their shipped weights were trained for (their card's), since weights fix the image size.
"""

import pytest
import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.registry import build_method, method, methods, task, tasks

torch.set_num_threads(1)


def _instance(name, kind):
    info = method(name)
    return task(kind) if info.kind == "learned" else type(task(kind)).tiny()


CASES = [(m, k) for k in tasks() for m in methods(k)]


def _data(t, n=3):
    ds = SimulatedDataset("ellipses", "test", t, size=n)
    return ds.batch(range(n))


@pytest.fixture(params=CASES, ids=[f"{m}-{k}" for m, k in CASES])
def case(request):
    name, kind = request.param
    t = _instance(name, kind)
    return name, t, build_method(name, t, params=method(name).quick)


def test_every_task_has_methods_and_every_method_a_task():
    assert "ct" in tasks()
    for name in methods():
        assert any(method(name).supports(task(k)) for k in tasks()), name
    assert {"fbp", "tv", "lpd"} <= set(methods("ct"))


def test_output_shape_dtype_device_and_quality(case):
    name, t, recon = case
    y, x = _data(t)
    with torch.no_grad():
        out = recon(y)
    # the ground truth's dtype: float32 for real tasks, complex64 for complex ones (MRI)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == y.device
    assert x.dtype == (torch.complex64 if t.image_dtype.is_complex else torch.float32)
    assert torch.isfinite(out).all()
    # every method does better than an all-zero image on a tiny noisy problem (complex images
    # are scored on their magnitudes, tl.metrics' convention)
    assert float(tl.metrics.psnr(out, x).mean()) > float(tl.metrics.psnr(torch.zeros_like(x), x).mean()) + 3


def test_batch_equals_loop_and_determinism(case):
    name, t, recon = case
    y, _ = _data(t)
    with torch.no_grad():
        both = recon(y)
        again = recon(y)
        alone = torch.cat([recon(y[i:i + 1]) for i in range(y.shape[0])])
    torch.testing.assert_close(again, both, rtol=0, atol=0)
    torch.testing.assert_close(alone, both, rtol=1e-4, atol=1e-5)


def test_finite_on_zero_data(case):
    name, t, recon = case
    y, _ = _data(t, n=1)
    with torch.no_grad():
        out = recon(torch.zeros_like(y))
    assert torch.isfinite(out).all()


def test_wrong_data_shape_is_a_clear_error(case):
    name, t, recon = case
    y, _ = _data(t, n=1)
    with pytest.raises(ValueError, match=r"shape"):
        recon(y[..., :-1])


def test_iterative_solvers_decrease_their_objective(case):
    name, t, recon = case
    if not hasattr(recon, "solve"):
        pytest.skip(f"{name} is not an iterative solver")
    y, _ = _data(t, n=2)
    objective = recon.solve(y).objective.sum(dim=(1, 2))  # (iterations,)
    assert objective[-1] < objective[0]
    # and it ends at (or within 1e-3 of) the lowest value it reached
    assert objective[-1] <= objective.min() * (1 + 1e-3)


def test_unsupported_task_and_unknown_method_are_named():
    from dataclasses import dataclass

    from tomolearn.registry import Task

    @dataclass(frozen=True)
    class _Complex(Task):  # an unregistered complex-valued task
        seed: int = 0
        image_dtype = torch.complex64

        def operator(self):
            return tl.operators.Identity((4, 4))

        def simulate(self, images, generator=None):
            return images

        def initial_reconstruction(self, y, op=None):
            return y

        def noise_std(self, y):
            return y.abs().mean()

    with pytest.raises(ValueError, match="does not support task"):
        build_method("tv", _Complex())
    with pytest.raises(ValueError, match=r"unknown method 'nope'; registered: fbp, .*\btv\b"):
        build_method("nope", "ct")
