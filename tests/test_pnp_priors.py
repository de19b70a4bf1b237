"""Plug-and-play and RED priors (tomolearn.solvers.priors) inside the existing schemes.

The denoiser ``D(v, sigma) = v / (1 + sigma^2)`` is the exact prox of the
Tikhonov prior ``phi = 1/2 ||x||^2`` at noise variance ``sigma^2 = gamma lam``
(``prox_{gamma lam phi}(v) = v / (1 + gamma lam)``), so PnP with it must reach
the Tikhonov minimiser (closed form by torch.linalg); RED with it is Tikhonov
with weight ``lam sigma^2 / (1 + sigma^2)``.  Sigma reaches the denoiser as the
protocol says (float or a (B,) tensor ``sqrt(lam gamma)``), complex images
work, and bad input is refused with messages naming the argument.
"""

import math

import pytest
import torch

from tomolearn import solvers as S
from tomolearn.operators import MatrixOperator

SHAPE = (3, 4)  # images (B, 1, 3, 4): the denoiser protocol's (B, C, H, W)


def tikhonov_denoiser(v, sigma):
    """The prox of ``sigma^2/2 ||x||^2``: ``v / (1 + sigma^2)``; sigma a float or (B,)."""
    if isinstance(sigma, torch.Tensor):
        assert sigma.shape == (v.shape[0],), sigma.shape
        sigma = sigma.reshape((-1,) + (1,) * (v.dim() - 1))
    return v / (1 + sigma ** 2)


class Recorder:
    """A Tikhonov-prox denoiser that records every sigma it receives."""

    def __init__(self):
        self.sigmas = []

    def __call__(self, v, sigma):
        self.sigmas.append(sigma.clone() if isinstance(sigma, torch.Tensor) else sigma)
        return tikhonov_denoiser(v, sigma)


def _problem(seed=0, m=30, batch=2, dtype=torch.float64):
    n = math.prod(SHAPE)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, n, generator=g, dtype=torch.float64).to(dtype)
    if dtype.is_complex:
        a = a + 1j * torch.randn(m, n, generator=g, dtype=torch.float64)
    y = torch.randn((batch, 1, m), generator=g, dtype=torch.float64).to(dtype)
    if dtype.is_complex:
        y = y + 1j * torch.randn((batch, 1, m), generator=g, dtype=torch.float64)
    return MatrixOperator(a, domain_shape=SHAPE), a, y


def _tikhonov(a, y, reg):
    """Closed form of ``1/2 ||A x - y||^2 + reg/2 ||x||^2`` per problem, shape (B, 1, *SHAPE)."""
    m, n = a.shape
    lhs = a.conj().T @ a + reg * torch.eye(n, dtype=a.dtype)
    rhs = a.conj().T @ y.reshape(-1, m).T
    return torch.linalg.solve(lhs, rhs).T.reshape(y.shape[:2] + SHAPE)


# -- PnP: known answer -----------------------------------------------------------------------------
LAM = 2.0
PNP_RUNS = {
    ("fista", None): lambda op, y, r: S.fista(op, y, None, r, n_iter=300),
    ("ista", None): lambda op, y, r: S.fista(op, y, None, r, n_iter=600, momentum=False),
    ("admm", True): lambda op, y, r: S.admm(op, y, None, r, n_iter=200, rescale=True),
    ("admm", False): lambda op, y, r: S.admm(op, y, None, r, n_iter=200, rho=5.0,
                                              rescale=False),
    ("pdhg", True): lambda op, y, r: S.pdhg(op, y, None, r, n_iter=1000, ratio=1.0),
    ("pdhg", False): lambda op, y, r: S.pdhg(op, y, None, r, n_iter=1000, ratio=1.0,
                                              rescale=False),
}


@pytest.mark.parametrize("scheme,rescale", sorted(PNP_RUNS, key=str), ids=str)
def test_pnp_with_the_tikhonov_prox_denoiser_reaches_the_tikhonov_minimiser(scheme, rescale):
    op, a, y = _problem()
    ref = _tikhonov(a, y, LAM)
    res = PNP_RUNS[scheme, rescale](op, y, S.DenoiserPrior(tikhonov_denoiser, lam=LAM))
    torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-9)
    # the implicit prior has no value: the reported objective is the data term only
    torch.testing.assert_close(res.objective[-1], S.LeastSquares().value(op, res.x, y),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("rescale", [False, True])
def test_pnp_hqs_with_fixed_mu_solves_its_penalised_problem(rescale):
    op, a, y = _problem(seed=3)
    # mu is relative to ||A||^2 under rescale: the penalty in the original scaling is mu ||A||^2
    mu = 0.1 if rescale else 10.0
    m_eff = mu * op.norm() ** 2 if rescale else mu
    # min 1/2||Ax-y||^2 + lam/2||z||^2 + m/2||x-z||^2:
    #     x is Tikhonov with weight lam m/(lam+m), z = m/(lam+m) x
    ref = m_eff / (LAM + m_eff) * _tikhonov(a, y, LAM * m_eff / (LAM + m_eff))
    res = S.hqs(op, y, None, S.DenoiserPrior(tikhonov_denoiser, lam=LAM), mu=mu, rescale=rescale,
                n_iter=300)
    torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-9)


def test_pnp_hqs_with_the_dpir_schedule_approaches_the_minimiser():
    op, a, y = _problem(seed=3)
    ref = _tikhonov(a, y, LAM)
    prior = S.DenoiserPrior(tikhonov_denoiser, lam=LAM)
    # a penalty method: the error shrinks like 1/mu_last (default schedule mu = (0.01, 100))
    errors = [float((S.hqs(op, y, None, prior, n_iter=n).x - ref).abs().max() / ref.abs().max())
              for n in (100, 400)]
    assert errors[1] < 5e-3 and errors[1] < 0.5 * errors[0], errors


@pytest.mark.parametrize("rescale", [False, True])
def test_pnp_hqs_schedule_gives_dpir_geometric_sigmas(rescale):
    op, _, y = _problem(seed=3)
    den = Recorder()
    n_iter, mu = 6, (0.1, 100.0)
    S.hqs(op, y, None, S.DenoiserPrior(den, lam=LAM), mu=mu, rescale=rescale, n_iter=n_iter)
    norm2 = op.norm() ** 2 if rescale else 1.0
    mus = [mu[0] * (mu[1] / mu[0]) ** (k / (n_iter - 1)) for k in range(n_iter)]
    expected = [math.sqrt(LAM / (m * norm2)) for m in mus]
    assert len(den.sigmas) == n_iter and all(isinstance(s, float) for s in den.sigmas)
    for got, want in zip(den.sigmas, expected):
        assert got == pytest.approx(want, rel=1e-12)


def test_pnp_box_matches_tikhonov_with_the_same_box():
    op, _, y = _problem(seed=5)
    pnp = S.fista(op, y, None, S.DenoiserPrior(tikhonov_denoiser, lam=LAM, lower=0.0), n_iter=300)
    tik = S.fista(op, y, None, S.Tikhonov(LAM, lower=0.0), n_iter=300)
    assert float(pnp.x.min()) >= 0.0 and float((pnp.x == 0).sum()) > 0
    torch.testing.assert_close(pnp.x, tik.x, rtol=0, atol=1e-12)
    # a box regulariser summed with the prior: the same problem
    summed = S.fista(op, y, None, S.DenoiserPrior(tikhonov_denoiser, lam=LAM) + S.Positivity(),
                     n_iter=300)
    torch.testing.assert_close(summed.x, tik.x, rtol=0, atol=1e-12)


# -- PnP: the sigma the denoiser receives ----------------------------------------------------------
def test_prox_passes_sqrt_lam_gamma_float_and_per_image():
    den = Recorder()
    lam = 0.5
    prior = S.DenoiserPrior(den, lam=lam)
    v = torch.randn((2, 1) + SHAPE, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    out = prior.prox(v, 0.18)
    assert isinstance(den.sigmas[-1], float) and den.sigmas[-1] == pytest.approx(0.3, rel=1e-14)
    torch.testing.assert_close(out, v / 1.09, rtol=1e-14, atol=0)
    gamma = torch.tensor([0.18, 2.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    out = prior.prox(v, gamma)
    sig = den.sigmas[-1]
    assert isinstance(sig, torch.Tensor) and sig.shape == (2,) and sig.dtype == torch.float64
    torch.testing.assert_close(sig, torch.tensor([0.3, 1.0], dtype=torch.float64),
                               rtol=1e-14, atol=0)
    scale = torch.tensor([1.09, 2.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    torch.testing.assert_close(out, v / scale, rtol=1e-14, atol=0)
    # a 0-dim tensor gamma is one level for every image
    prior.prox(v, torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(den.sigmas[-1], torch.ones(2, dtype=torch.float64))
    # through the base class's rescaled(s): sigma = sqrt(lam gamma s^2)
    prior.rescaled(0.5).prox(v, 2.0)
    assert den.sigmas[-1] == pytest.approx(math.sqrt(lam * 2.0 * 0.25), rel=1e-14)


def test_prox_refuses_bad_gamma_and_bad_denoiser_output():
    prior = S.DenoiserPrior(tikhonov_denoiser, lam=1.0)
    v = torch.zeros((2, 2) + SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match="gamma"):
        prior.prox(v, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        prior.prox(v, torch.tensor([1.0, -1.0], dtype=torch.float64).reshape(2, 1, 1, 1))
    with pytest.raises(ValueError, match="channels"):
        prior.prox(v, torch.tensor([[1.0, 2.0]], dtype=torch.float64).reshape(1, 2, 1, 1))
    with pytest.raises(ValueError, match="broadcast"):
        prior.prox(v, torch.ones(3, 1, 1, 1, dtype=torch.float64))
    bad = S.DenoiserPrior(lambda x, s: x[..., :2], lam=1.0)
    with pytest.raises(ValueError, match="shape"):
        bad.prox(v, 1.0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        S.DenoiserPrior(lambda x, s: 0.0).prox(v, 1.0)


# -- PnP: complex images ---------------------------------------------------------------------------
def test_pnp_fista_on_complex_images_reaches_the_complex_tikhonov_minimiser():
    op, a, y = _problem(seed=7, m=20, batch=1, dtype=torch.complex128)
    ref = _tikhonov(a, y, 1.0)
    assert ref.is_complex() and float(ref.imag.abs().max()) > 0.1
    res = S.fista(op, y, None, S.DenoiserPrior(tikhonov_denoiser, lam=1.0), n_iter=1500)
    assert res.x.dtype == torch.complex128 and res.objective.dtype == torch.float64
    torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-9)


# -- RED -------------------------------------------------------------------------------------------
def test_red_value_and_gradient_with_the_linear_denoiser():
    lam, sigma = 3.0, 0.5
    red = S.REDPrior(tikhonov_denoiser, lam=lam, sigma=sigma)
    x = torch.randn((2, 1) + SHAPE, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    d = x / (1 + sigma ** 2)
    torch.testing.assert_close(red.gradient(x), lam * (x - d), rtol=1e-14, atol=0)
    expected = 0.5 * lam * (x * (x - d)).flatten(1).sum(dim=1).reshape(2, 1)
    torch.testing.assert_close(red.value(x), expected, rtol=1e-13, atol=0)
    # with this D, RED is Tikhonov with weight lam sigma^2 / (1 + sigma^2)
    w = lam * sigma ** 2 / (1 + sigma ** 2)
    torch.testing.assert_close(red.value(x), S.Tikhonov(w).value(x), rtol=1e-13, atol=0)
    assert red.smooth and not red.proximable and red.lipschitz is None


def test_red_value_of_complex_images_is_the_real_inner_product():
    red = S.REDPrior(lambda x, s: (0.5 + 0.25j) * x, lam=2.0, sigma=1.0)
    x = torch.randn((1, 1) + SHAPE, generator=torch.Generator().manual_seed(2),
                    dtype=torch.complex128)
    # Re <x, x - (0.5 + 0.25j) x> = 0.5 ||x||^2
    expected = (0.5 * (x.abs() ** 2).sum()).reshape(1, 1)
    torch.testing.assert_close(red.value(x), expected, rtol=1e-13, atol=0)
    assert red.value(x).dtype == torch.float64


@pytest.mark.parametrize("nesterov", [False, True])
def test_red_gradient_descent_reaches_the_equivalent_tikhonov_minimiser(nesterov):
    op, a, y = _problem(seed=2)
    lam, sigma = 3.0, 1.0
    w = lam * sigma ** 2 / (1 + sigma ** 2)
    ref = _tikhonov(a, y, w)
    red = S.REDPrior(tikhonov_denoiser, lam=lam, sigma=sigma)
    # no Lipschitz constant is known for a general denoiser: gradient descent asks for step=
    with pytest.raises(ValueError, match="step="):
        S.gradient_descent(op, y, None, red, n_iter=5)
    step = 1.0 / (op.norm() ** 2 + lam)
    res = S.gradient_descent(op, y, None, red, n_iter=600 if not nesterov else 300, step=step,
                             nesterov=nesterov)
    torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-9)
    expected = S.LeastSquares().value(op, res.x, y) + S.Tikhonov(w).value(res.x)
    torch.testing.assert_close(res.objective[-1], expected, rtol=1e-12, atol=0)
    # a declared Lipschitz constant gives the default step 1 / (||A||^2 + L)
    declared = S.REDPrior(tikhonov_denoiser, lam=lam, sigma=sigma, lipschitz=lam)
    res2 = S.gradient_descent(op, y, None, declared, n_iter=600 if not nesterov else 300,
                              nesterov=nesterov)
    torch.testing.assert_close(res2.x, res.x, rtol=0, atol=1e-12)


def test_red_plain_gradient_descent_calls_the_denoiser_once_per_iteration():
    op, _, y = _problem(seed=2)
    den = Recorder()
    n_iter = 7
    S.gradient_descent(op, y, None, S.REDPrior(den, lam=1.0, sigma=0.5), n_iter=n_iter, step=0.01)
    # gradient at x_k and value at x_k share one call; plus the gradient at x0
    assert len(den.sigmas) == n_iter + 1 and all(s == 0.5 for s in den.sigmas)
    # the cache does not outlive a change of the tensor
    red = S.REDPrior(den, lam=1.0, sigma=0.5)
    x = torch.ones((1, 1) + SHAPE, dtype=torch.float64)
    with torch.no_grad():
        g1 = red.gradient(x)
        x.mul_(2.0)
        g2 = red.gradient(x)
    torch.testing.assert_close(g2, 2 * g1, rtol=1e-14, atol=0)


def test_red_with_a_box_projects():
    op, _, y = _problem(seed=2)
    red = S.REDPrior(tikhonov_denoiser, lam=3.0, sigma=1.0, lower=0.0)
    res = S.gradient_descent(op, y, None, red, n_iter=300, step=0.01, nesterov=True)
    ref = S.gradient_descent(op, y, None, S.Tikhonov(1.5, lower=0.0), n_iter=300, step=0.01,
                             nesterov=True)
    assert float(res.x.min()) >= 0.0
    torch.testing.assert_close(res.x, ref.x, rtol=0, atol=1e-12)


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf"), True, "1"])
@pytest.mark.parametrize("cls", ["DenoiserPrior", "REDPrior"])
def test_bad_lam_is_refused(cls, lam):
    kwargs = {"sigma": 0.1} if cls == "REDPrior" else {}
    with pytest.raises(ValueError, match=rf"{cls}: lam .* got {lam!r}"):
        getattr(S, cls)(tikhonov_denoiser, lam=lam, **kwargs)


@pytest.mark.parametrize("cls", ["DenoiserPrior", "REDPrior"])
def test_non_callable_denoiser_is_refused(cls):
    kwargs = {"sigma": 0.1} if cls == "REDPrior" else {}
    with pytest.raises(TypeError, match=rf"{cls}: denoiser must be a callable.*got Tensor"):
        getattr(S, cls)(torch.zeros(3), **kwargs)


@pytest.mark.parametrize("sigma", [None, 0.0, -0.5, float("nan"), float("inf")])
def test_red_bad_sigma_is_refused(sigma):
    with pytest.raises(ValueError, match=rf"REDPrior: sigma .* got {sigma!r}"):
        S.REDPrior(tikhonov_denoiser, lam=1.0, sigma=sigma)


def test_red_bad_lipschitz_and_schemes_refuse_the_wrong_kind():
    with pytest.raises(ValueError, match="REDPrior: lipschitz"):
        S.REDPrior(tikhonov_denoiser, sigma=0.1, lipschitz=-1.0)
    op, _, y = _problem()
    with pytest.raises(TypeError, match="fista needs a regulariser with a prox"):
        S.fista(op, y, None, S.REDPrior(tikhonov_denoiser, sigma=0.1), n_iter=2)
    with pytest.raises(TypeError, match="gradient_descent needs a smooth regulariser"):
        S.gradient_descent(op, y, None, S.DenoiserPrior(tikhonov_denoiser), n_iter=2, step=0.01)
