"""Deep image prior and DIP + TV: the network, the fit, the stopping rule and bad input."""

import pytest
import torch

import tomolearn as tl
from tomolearn.learned.dip import SkipNet, deep_image_prior
from tomolearn.solvers.regularisers import total_variation

torch.set_num_threads(1)
QUICK = {"channels": 8, "scales": 2, "lr": 2e-2}


@pytest.fixture(scope="module")
def ct():
    t = tl.task("ct").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=2).batch([0, 1])
    return t.operator(), y, x


def test_skipnet_maps_any_size_and_refuses_bad_sizes():
    net = SkipNet(1, 2, channels=4, scales=3, skip_channels=2)
    for shape in ((16, 16), (13, 21), (5, 9)):
        assert net(torch.randn((2, 1) + shape)).shape == (2, 2) + shape
    assert SkipNet(1, 1, channels=4, scales=2, skip_channels=0)(torch.randn(1, 1, 8, 8)).shape \
        == (1, 1, 8, 8)
    for bad in ({"channels": 0}, {"scales": 1.5}, {"skip_channels": -1}, {"in_channels": True}):
        with pytest.raises(ValueError):
            SkipNet(**bad)


def test_dip_fits_the_data_and_returns_its_lowest_loss_iterate(ct):
    op, y, x = ct
    losses = []
    out = deep_image_prior(op, y[:1], n_iter=120, seed=3,
                           callback=lambda i, k, v, _: losses.append(v), **QUICK)
    assert len(losses) == 120 and losses[-1] < 0.05 * losses[0]
    final = float(((op(out) - y[:1]) ** 2).mean())
    assert final == pytest.approx(min(losses), rel=1e-5)
    # far better than the zero image, and the fit does not depend on the batch
    assert float(tl.metrics.psnr(out, x[:1])) > float(tl.metrics.psnr(0 * x[:1], x[:1])) + 6
    with torch.inference_mode():
        again = deep_image_prior(op, y, n_iter=120, seed=3, **QUICK)
    torch.testing.assert_close(again[:1], out, rtol=1e-4, atol=1e-5)


def test_dip_tv_trades_data_fit_for_smaller_total_variation(ct):
    op, y, x = ct
    plain = deep_image_prior(op, y[:1], n_iter=100, gamma=0.0, **QUICK)
    smooth = deep_image_prior(op, y[:1], n_iter=100, gamma=1e-1, **QUICK)
    assert float(total_variation(smooth).sum()) < 0.8 * float(total_variation(plain).sum())
    assert float(((op(smooth) - y[:1]) ** 2).mean()) > float(((op(plain) - y[:1]) ** 2).mean())


def test_dip_on_complex_data_returns_complex_images():
    t = tl.task("mri").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=1).batch([0])
    out = deep_image_prior(t.operator(), y, n_iter=60, **QUICK)
    assert out.dtype == torch.complex64 and out.shape == x.shape
    assert float(tl.metrics.psnr(out, x)) > float(tl.metrics.psnr(0 * x, x)) + 3


@pytest.mark.parametrize("bad, match", [({"n_iter": 0}, "n_iter"), ({"lr": float("nan")}, "lr"),
                                        ({"gamma": -1.0}, "gamma"), ({"n_iter": 2.5}, "n_iter")])
def test_dip_bad_parameters_are_clear_errors(ct, bad, match):
    op, y, _ = ct
    with pytest.raises(ValueError, match=match):
        deep_image_prior(op, y, **bad)
    with pytest.raises(ValueError):
        deep_image_prior(op, y[..., :-1], n_iter=1)


def test_educated_dip_fine_tunes_a_copy_from_the_first_guess(ct):
    from tomolearn.learned import EducatedDIPNet
    from tomolearn.learned.dip import educated_dip

    op, y, x = ct
    model = EducatedDIPNet(op, channels=8, scales=2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        start = model(y)
        h, c = model.network_input(y)
    assert start.shape == x.shape and h.shape == x.shape and c.shape == (2, 1, 1, 1)
    torch.testing.assert_close(h.abs().amax(dim=(1, 2, 3)), torch.ones(2))
    losses = []
    out = educated_dip(model, y, n_iter=80, lr=1e-2, gamma=0.0,
                       callback=lambda i, k, v, _: losses.append((i, v)))
    first = [v for i, v in losses if i == 0]
    assert len(first) == 80 and first[-1] < 0.2 * first[0]
    assert float(((op(out[:1]) - y[:1]) ** 2).mean()) < float(((op(start[:1]) - y[:1]) ** 2).mean())
    for k, v in model.state_dict().items():  # the pretrained model is left as it was
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="gamma"):
        educated_dip(model, y, gamma=float("inf"))
