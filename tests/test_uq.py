"""Tests of tomolearn.uq: conformal bounds, scale heuristics, shift detection, the report."""

import math

import pytest
import torch

import tomolearn as tl
from tomolearn import uq


pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic_pool(m=400, size=8, level=1.0, seed=0):
    """Exchangeable images: x_true = x_hat + level * c_i * s * z, heteroscedastic s known,
    per-image factor c_i (log-normal) unknown to the method."""
    g = torch.Generator().manual_seed(seed)
    x_hat = torch.rand(m, 1, size, size, generator=g, dtype=torch.float64)
    s = 0.05 + 0.2 * torch.rand(m, 1, size, size, generator=g, dtype=torch.float64)
    c = torch.exp(0.5 * torch.randn(m, 1, 1, 1, generator=g, dtype=torch.float64))
    x_true = x_hat + level * c * s * torch.randn(m, 1, size, size, generator=g, dtype=torch.float64)
    return x_hat, x_true, s


# -- conformal quantile ---------------------------------------------------------------------------
def test_conformal_quantile_hand_cases():
    s = torch.tensor([3.0, 1.0, 2.0, 5.0, 4.0])
    assert uq.conformal_quantile(s, 0.5) == 3.0        # ceil(6 * 0.5) = 3
    assert uq.conformal_quantile(s, 0.2) == 5.0        # ceil(6 * 0.8) = ceil(4.8) = 5
    assert uq.conformal_quantile(s, 0.1) == math.inf   # ceil(5.4) = 6 > 5
    nine = torch.arange(1.0, 10.0)
    assert uq.conformal_quantile(nine, 0.1) == 9.0     # 10 * 0.9 = 9 despite float rounding
    assert uq.conformal_quantile(nine, 0.3) == 7.0     # 10 * 0.7 = 7, not 8
    assert uq.conformal_quantile(nine, 0.05) == math.inf
    assert uq.conformal_quantile(torch.tensor([2.0, 2.0, 1.0]), 0.5) == 2.0


# -- per-pixel intervals --------------------------------------------------------------------------
def brute_force_lambda(ratios, alpha, mask=None):
    n = ratios.shape[0]
    m = torch.ones_like(ratios, dtype=torch.bool) if mask is None else mask.expand(ratios.shape)
    best = math.inf
    for c in torch.unique(ratios[m]).tolist():
        frac_out = [float((ratios[i][m[i]] > c).double().mean()) for i in range(n)]
        if n / (n + 1) * sum(frac_out) / n + 1 / (n + 1) <= alpha + 1e-12:
            best = min(best, c)
    return best


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.4])
@pytest.mark.parametrize("use_mask", [False, True])
def test_pixel_lambda_is_exact(alpha, use_mask):
    g = torch.Generator().manual_seed(1)
    ratios = torch.randint(0, 30, (11, 1, 5, 5), generator=g).double() / 7  # many ties
    mask = None
    if use_mask:
        mask = torch.rand(11, 1, 5, 5, generator=g) < 0.6
        mask[:, :, 0, 0] = True
    pi = uq.PixelIntervals.from_ratios(ratios, alpha, mask)
    assert pi.lam == brute_force_lambda(ratios, alpha, mask)
    assert pi.n == 11 and pi.alpha == alpha
    n = 11
    assert n / (n + 1) * pi.risk + 1 / (n + 1) <= alpha + 1e-12
    # the generic grid version on the grid of all ratios agrees (no mask: equal pixel counts)
    if not use_mask:
        grid = torch.unique(ratios)
        losses = (ratios.reshape(n, -1, 1) > grid).double().mean(1)
        assert uq.conformal_risk_control(losses, grid, alpha, 1.0) == pi.lam


def test_pixel_lambda_infinite_when_too_few_images():
    x_hat, x_true, s = synthetic_pool(m=8)
    pi = uq.PixelIntervals.calibrate(x_hat, x_true, s, alpha=0.1)  # 9 * 0.1 < 1
    assert pi.lam == math.inf
    lo, hi = pi.interval(x_hat, s)
    assert torch.isinf(lo).all() and torch.isinf(hi).all()
    assert (pi.coverage(x_hat, s, x_true) == 1).all()


def test_pixel_interval_coverage_over_random_splits():
    x_hat, x_true, s = synthetic_pool(m=400)
    ratios = uq.pixel_ratios(x_hat, x_true, s)
    alpha, n = 0.2, 9
    g = torch.Generator().manual_seed(2)
    covs = []
    for _ in range(200):
        perm = torch.randperm(400, generator=g)
        cal, test = perm[:n], perm[n:]
        pi = uq.PixelIntervals.from_ratios(ratios[cal], alpha)
        covs.append(float((ratios[test] <= pi.lam).double().mean()))
    mean = sum(covs) / len(covs)
    # guarantee: >= 1 - alpha; conformal risk control is tight to about 1/(n+1)
    assert 1 - alpha - 0.01 <= mean <= 1 - alpha + 1 / (n + 1) + 0.01, mean


def test_interval_methods_agree_and_width_grows_with_noise():
    widths = []
    for level in (0.5, 1.0, 2.0):
        x_hat, x_true, s = synthetic_pool(m=60, level=level, seed=3)
        pi = uq.PixelIntervals.calibrate(x_hat[:40], x_true[:40], s[:40], alpha=0.1)
        lo, hi = pi.interval(x_hat[40:], s[40:])
        inside = ((x_true[40:] >= lo) & (x_true[40:] <= hi)).double().reshape(20, -1).mean(1)
        cov = pi.coverage(x_hat[40:], s[40:], x_true[40:])
        assert torch.allclose(inside, cov)
        w = pi.width(s[40:])
        assert torch.allclose(hi - lo, w)
        widths.append(float(w.mean()))
    assert all(math.isfinite(w) for w in widths)
    assert widths[0] < widths[1] < widths[2]
    # constant scale: plain +- lam intervals
    pi = uq.PixelIntervals.calibrate(x_hat, x_true, 1.0, alpha=0.1)
    assert torch.allclose(pi.width(uq.constant_scale(x_hat)), torch.full_like(x_hat, 2 * pi.lam))


def test_conformal_risk_control_hand_case():
    lambdas = torch.tensor([0.0, 1.0, 2.0, 3.0])
    losses = torch.tensor([[1.0, 0.5, 0.0, 0.0],
                           [1.0, 1.0, 0.5, 0.0],
                           [1.0, 0.5, 0.5, 0.0]])
    # need sum_i loss_i <= 4 alpha - 1: alpha = 0.5 -> 1 -> lambda 2 (sum 1.0)
    assert uq.conformal_risk_control(losses, lambdas, 0.5) == 2.0
    assert uq.conformal_risk_control(losses, lambdas, 0.3) == 3.0   # 0.2 -> sum 0 at 3
    assert uq.conformal_risk_control(losses, lambdas, 0.2) == math.inf
    assert uq.conformal_risk_control(losses, lambdas, 0.9) == 1.0   # 2.6 >= sum 2.0


# -- image-level bound ----------------------------------------------------------------------------
def test_rmse_bound_coverage_over_random_splits():
    x_hat, x_true, _ = synthetic_pool(m=400, seed=4)
    rmse = uq.image_rmse(x_hat, x_true)
    assert torch.allclose(rmse, (x_hat - x_true).square().mean((1, 2, 3)).sqrt())
    alpha, n = 0.1, 19
    g = torch.Generator().manual_seed(5)
    covs = []
    for _ in range(200):
        perm = torch.randperm(400, generator=g)
        b = uq.ImageErrorBound.calibrate(rmse[perm[:n]], alpha)
        covs.append(float(b.covers(rmse[perm[n:]]).double().mean()))
    mean = sum(covs) / len(covs)
    assert 1 - alpha - 0.01 <= mean <= 1 - alpha + 1 / (n + 1) + 0.01, mean
    b = uq.ImageErrorBound.from_images(x_hat[:19], x_true[:19], alpha)
    assert b.bound == float(rmse[:19].sort().values[17]) and b.n == 19  # ceil(20 * 0.9) = 18


# -- scale heuristics -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_op():
    return tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=20, n_detectors=46), image_shape=(32, 32))


def test_scale_from_ensemble():
    g = torch.Generator().manual_seed(6)
    preds = torch.randn(5, 3, 1, 8, 8, generator=g)
    preds[:, :, :, 0, 0] = 1.0  # all members agree there
    x_hat, s = uq.scale_from_ensemble(preds)
    assert x_hat.shape == s.shape == (3, 1, 8, 8)
    assert torch.allclose(x_hat, preds.mean(0))
    assert torch.allclose(s[:, :, 1:, 1:], preds.std(0)[:, :, 1:, 1:])
    assert (s > 0).all()



def test_uncertainty_error_correlation_hand_cases():
    g = torch.Generator().manual_seed(8)
    x_true = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    err = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)
    x_hat = x_true - err  # |x_true - x_hat| = err
    r = uq.uncertainty_error_correlation(0.1 + 2 * err, x_hat, x_true)  # affine in the error
    assert r.shape == (3,) and torch.allclose(r, torch.ones(3, dtype=torch.float64))
    r = uq.uncertainty_error_correlation(1.5 - err, x_hat, x_true)
    assert torch.allclose(r, -torch.ones(3, dtype=torch.float64))
    r = uq.uncertainty_error_correlation(torch.ones_like(err), x_hat, x_true)
    assert torch.isnan(r).all()  # a constant map carries no information
    indep = torch.rand(200, 1, 16, 16, generator=g, dtype=torch.float64) + 0.1
    x2 = torch.rand(200, 1, 16, 16, generator=g, dtype=torch.float64)
    r = uq.uncertainty_error_correlation(indep, torch.zeros_like(x2), x2)
    assert abs(float(r.mean())) < 0.02  # independent map: about 0
    with pytest.raises(ValueError, match="same shape"):
        uq.uncertainty_error_correlation(err, x_hat, x_true[:2])


def test_spearman_hand_cases_and_ties():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert uq.spearman(a, a ** 3) == pytest.approx(1.0)
    assert uq.spearman(a, -a) == pytest.approx(-1.0)
    # ties get their mean rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4)
    assert uq.spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), a) == pytest.approx(
        float(torch.corrcoef(torch.stack([torch.tensor([1, 2.5, 2.5, 4.0]), a]))[0, 1]))
    assert math.isnan(uq.spearman(torch.ones(4), a))
    with pytest.raises(ValueError, match="one size"):
        uq.spearman(a, a[:3])


def test_split_scale_takes_an_own_scale_or_the_residual(small_op):
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    y = small_op(x)
    x_hat, s, kind = uq.split_scale(x, small_op, y)
    assert kind == "residual" and torch.allclose(s, uq.scale_from_residual(small_op, x, y))
    own = torch.full_like(x, 0.3)
    x_hat, s, kind = uq.split_scale((x, own), small_op, y)
    assert kind == "own" and torch.equal(s, own) and torch.equal(x_hat, x)
    with pytest.raises(ValueError, match="> 0"):
        uq.split_scale((x, torch.zeros_like(x)), small_op, y)
    with pytest.raises(ValueError, match="tuple of 3"):
        uq.split_scale((x, own, own), small_op, y)

def test_scale_from_residual_positive_mean_one(small_op):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 1, 32, 32, generator=g, dtype=torch.float64)
    y = small_op(x) + 0.1 * torch.randn(3, 1, 20, 46, generator=g, dtype=torch.float64)
    s = uq.scale_from_residual(small_op, tl.ct.fbp(small_op, y), y)
    assert s.shape == x.shape and (s > 0).all()
    assert torch.allclose(s.mean((1, 2, 3)), torch.ones(3, dtype=torch.float64))
    assert s.std() > 0.01  # not constant
    s0 = uq.scale_from_residual(small_op, x, small_op(x))  # data-consistent -> constant 1
    assert torch.allclose(s0, torch.ones_like(s0))


# -- shift detection ------------------------------------------------------------------------------
def test_data_consistency_is_one_for_truth(small_op):
    g = torch.Generator().manual_seed(8)
    x = torch.rand(6, 1, 32, 32, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.02, 0.05, 0.1, 0.2, 0.5], dtype=torch.float64)
    y = small_op(x) + sigma.reshape(-1, 1, 1, 1) * torch.randn(6, 1, 20, 46, generator=g,
                                                                dtype=torch.float64)
    dc = uq.data_consistency(small_op, x, y, sigma)
    assert dc.shape == (6,)
    assert (dc - 1).abs().max() < 0.12, dc        # sd about 1/sqrt(2 * 920) = 0.023
    dc_float = uq.data_consistency(small_op, x[:1], y[:1], 0.01)
    assert torch.allclose(dc_float, dc[:1])
    assert (uq.data_consistency(small_op, torch.zeros_like(x), y, sigma) > 2).all()
    est = uq.relative_noise_std(y)
    assert est.shape == (6,) and torch.allclose(est, 0.025 * y.abs().mean((1, 2, 3)))


def test_conformal_pvalues_super_uniform_and_small_under_shift():
    g = torch.Generator().manual_seed(9)
    n, trials = 19, 3000
    ps = []
    for _ in range(trials):
        z = torch.randn(n + 3, generator=g)
        ps.append(uq.conformal_pvalues(z[:n], z[n:]))
    p = torch.cat(ps)
    assert ((p >= 1 / (n + 1)) & (p <= 1)).all()
    for a in (0.05, 0.1, 0.2, 0.5):
        assert float((p <= a).double().mean()) <= a + 0.01, a
    assert float((p <= 0.5).double().mean()) >= 0.5 - 0.02  # and not trivially conservative
    cal = torch.randn(n, generator=g)
    shifted = uq.conformal_pvalues(cal, torch.randn(50, generator=g) + 6)
    assert (shifted == 1 / (n + 1)).all()
    # hand case: cal = 1..4; score 2.5 -> (1 + 2) / 5, tie counts as >=
    assert torch.allclose(uq.conformal_pvalues(torch.tensor([1.0, 2, 3, 4]), torch.tensor([2.5, 3.0, 9])),
                          torch.tensor([3 / 5, 3 / 5, 1 / 5], dtype=torch.float64))


def test_auroc_hand_cases():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert uq.auroc(a, a.clone()) == 0.5
    assert uq.auroc(a, a + 10) == 1.0
    assert uq.auroc(a + 10, a) == 0.0
    assert uq.auroc(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 3.0])) == 3.5 / 4
    g = torch.Generator().manual_seed(10)
    x, y = torch.randint(0, 5, (13,), generator=g).double(), torch.randint(0, 5, (7,), generator=g).double()
    pairs = (y[:, None] > x[None]).double() + 0.5 * (y[:, None] == x[None]).double()
    assert uq.auroc(x, y) == pytest.approx(float(pairs.mean()), abs=1e-12)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        uq.conformal_quantile(torch.ones(5), alpha)
    x_hat, x_true, s = synthetic_pool(m=4)
    with pytest.raises(ValueError, match="alpha"):
        uq.PixelIntervals.calibrate(x_hat, x_true, s, alpha)
    with pytest.raises(ValueError, match="alpha"):
        uq.ImageErrorBound.calibrate(torch.ones(5), alpha)


def test_bad_shapes_and_scales(small_op):
    x_hat, x_true, s = synthetic_pool(m=4)
    with pytest.raises(ValueError, match="same shape"):
        uq.PixelIntervals.calibrate(x_hat, x_true[:3], s, 0.1)
    with pytest.raises(ValueError, match=r"scale.*same shape"):
        uq.PixelIntervals.calibrate(x_hat, x_true, s[:, :, :4], 0.1)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        uq.PixelIntervals.calibrate(x_hat[0], x_true[0], s[0], 0.1)
    for bad in (s * 0, -s, 0.0, -1.0):
        with pytest.raises(ValueError, match="> 0"):
            uq.PixelIntervals.calibrate(x_hat, x_true, bad, 0.1)
    with pytest.raises(ValueError, match="mask"):
        uq.PixelIntervals.calibrate(x_hat, x_true, s, 0.1, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="increasing"):
        uq.conformal_risk_control(torch.zeros(3, 2), torch.tensor([1.0, 0.0]), 0.5)
    with pytest.raises(ValueError, match="non-increasing"):
        uq.conformal_risk_control(torch.tensor([[0.0, 1.0]]), torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="one entry per column"):
        uq.conformal_risk_control(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 2.0]), 0.5)
    with pytest.raises(ValueError, match="K >= 2"):
        uq.scale_from_ensemble(torch.ones(1, 2, 1, 4, 4))
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match="sigma"):
        uq.data_consistency(small_op, x, small_op(x), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"sigma.*\(N,\)"):
        uq.data_consistency(small_op, x, small_op(x), torch.ones(3))


def test_complex_images_are_scored_by_the_modulus_of_their_errors():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.complex64)
    d = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.complex64)
    x_hat = x + 0.1 * d
    ratios = uq.pixel_ratios(x_hat, x, 0.5)
    assert ratios.dtype == torch.float64
    torch.testing.assert_close(ratios, (0.1 * d).abs().double() / 0.5, rtol=1e-5, atol=1e-7)
    rmse = uq.image_rmse(x_hat, x)
    torch.testing.assert_close(rmse, (0.1 * d).abs().double().square().mean((1, 2, 3)).sqrt(),
                               rtol=1e-5, atol=1e-7)
    intervals = uq.PixelIntervals.calibrate(x_hat, x, 0.5, 0.2)
    assert 0.75 <= float(intervals.coverage(x_hat, 0.5, x).mean()) <= 1
    with pytest.raises(TypeError, match="disc"):
        intervals.interval(x_hat, 0.5)


def test_residual_scale_and_data_consistency_on_multi_coil_data():
    t = tl.task("mri").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "test", t, size=2).batch([0, 1])
    op = t.operator()
    scale = uq.scale_from_residual(op, op.adjoint(y), y)
    assert scale.dtype == torch.float32 and scale.shape == x.shape and (scale > 0).all()
    dc = uq.data_consistency(op, x, y, t.noise_std(y))
    assert ((dc > 0.5) & (dc < 2)).all()  # the truth fits its data to the noise level
