"""Adversarial regularisers (AR, ACR): the critic loss, convexity of the ACR, a variational
reconstruction that never increases its objective, a short training that learns to tell
truths from first guesses, and bad input."""

import pytest
import torch

import tomolearn as tl
from tomolearn.learned import AdversarialRegulariser, ConvexAdversarialRegulariser
from tomolearn.learned.adversarial import critic_loss
from tomolearn.train import trainer_from_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ct():
    t = tl.task("ct").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=3).batch([0, 1, 2])
    return t.operator(), y.double(), x.double()


def test_critic_loss_of_a_unit_linear_critic_has_no_penalty():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, 1, 6, 6, generator=gen, dtype=torch.float64)
    w = w / w.norm()
    truth = torch.randn(4, 1, 6, 6, generator=gen, dtype=torch.float64)
    artefact = torch.randn(4, 1, 6, 6, generator=gen, dtype=torch.float64)

    def linear(h):
        return (h * w).sum(dim=(1, 2, 3))

    expected = linear(truth).mean() - linear(artefact).mean()
    assert float(critic_loss(linear, truth, artefact, mu=10.0)) == pytest.approx(float(expected))

    def steep(h):  # gradient norm 3: penalty mu (3 - 1)^2
        return 3 * linear(h)

    got = float(critic_loss(steep, truth, artefact, mu=10.0))
    assert got == pytest.approx(3 * float(expected) + 10.0 * 4.0)


def test_acr_is_convex_and_ar_need_not_be(ct):
    op, y, x = ct
    acr = ConvexAdversarialRegulariser(op, channels=4, layers=3).double()
    with torch.no_grad():
        for p in acr.hidden:
            p.normal_()  # negative raw weights too: the forward pass clamps them
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            a = torch.randn(4, 1, 24, 24, generator=gen, dtype=torch.float64)
            b = torch.randn(4, 1, 24, 24, generator=gen, dtype=torch.float64)
            t = torch.rand(4, generator=gen, dtype=torch.float64)
            mid = t.view(-1, 1, 1, 1) * a + (1 - t.view(-1, 1, 1, 1)) * b
            lhs = acr.regulariser(mid)
            rhs = t * acr.regulariser(a) + (1 - t) * acr.regulariser(b)
            assert bool((lhs <= rhs + 1e-12).all())


@pytest.mark.parametrize("cls", [AdversarialRegulariser, ConvexAdversarialRegulariser])
def test_reconstruction_never_increases_the_objective(ct, cls):
    op, y, x = ct
    model = cls(op, channels=4, lam=0.5, n_iter=25).double()
    seen = []
    out = model.reconstruct(y, callback=lambda k, v: seen.append(v))
    start = model.objective(model.initial(y), y)
    values = torch.stack([start] + seen)
    assert bool((values[1:] <= values[:-1] + 1e-9).all())
    assert bool((values[-1] < values[0]).all())
    assert out.shape == x.shape and out.dtype == y.dtype
    with torch.no_grad():  # forward is the same reconstruction, also under no_grad
        torch.testing.assert_close(model(y), out)


def test_strongly_convex_problem_converges_to_its_minimiser(ct):
    op, y, x = ct
    model = ConvexAdversarialRegulariser(op, channels=4, layers=2, lam=1.0).double()
    with torch.no_grad():
        model.rho_raw.fill_(2.0)  # rho about 2.1: strongly convex, so descent converges linearly
    values = []
    out = model.reconstruct(y[:1], n_iter=200, callback=lambda k, v: values.append(float(v[0])))
    assert abs(values[-1] - values[-2]) < 1e-10 * abs(values[-1])
    xg = out.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model.objective(xg, y[:1]).sum(), xg)
    start = model.initial(y[:1]).requires_grad_(True)
    grad0, = torch.autograd.grad(model.objective(start, y[:1]).sum(), start)
    assert float(grad.norm()) < 1e-4 * float(grad0.norm())  # a stationary point: the minimiser


def test_complex_images_reconstruct():
    t = tl.task("mri").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=1).batch([0])
    model = AdversarialRegulariser(t.operator(), channels=4, lam=0.1, n_iter=5)
    seen = []
    out = model.reconstruct(y, callback=lambda k, v: seen.append(float(v[0])))
    assert out.dtype == torch.complex64 and out.shape == x.shape and seen[-1] <= seen[0]


def test_a_short_training_tells_truths_from_first_guesses(tmp_path):
    config = {"out_dir": str(tmp_path / "ar"),
              "model": {"name": "ar", "params": {"channels": 4, "n_iter": 3}},
              "data": {"task": "ct", "family": "ellipses", "simulation": {"image_size": 32},
                       "train_size": 400, "validation_size": 4},
              "train": {"steps": 40, "batch_size": 8, "lr": 1e-3, "val_every": 40,
                        "val_batch_size": 4, "log_every": 20, "checkpoint_every": 40,
                        "threads": 1, "tensorboard": False}}
    trainer_from_config(config, progress=False).fit()
    model = tl.load(tmp_path / "ar" / "final.safetensors")
    t = model.task
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=8).batch(range(8))
    with torch.no_grad():
        truths = model.regulariser(x)
        guesses = model.regulariser(model.initial(y))
    assert float(truths.mean()) < float(guesses.mean())


def test_bad_parameters_are_clear_errors(ct):
    op, _, _ = ct
    with pytest.raises(ValueError, match="lam"):
        AdversarialRegulariser(op, lam=-1.0)
    with pytest.raises(ValueError, match="mu"):
        AdversarialRegulariser(op, mu=float("nan"))
    with pytest.raises(ValueError, match="n_iter"):
        ConvexAdversarialRegulariser(op, n_iter=-2)
    with pytest.raises(ValueError, match="layers"):
        ConvexAdversarialRegulariser(op, layers=0)
