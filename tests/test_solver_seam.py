"""The solver seam: data fidelity x regulariser x iteration scheme.

Every scheme reaches known solutions (closed forms by torch.linalg), the
splitting schemes agree on one TV problem, monotone schemes are monotone,
boxes hold, Poisson EM climbs the likelihood, complex least squares
converges, the protocols' pieces satisfy their defining identities, and bad
input is refused with messages naming what was expected and what was given.
"""

import math

import pytest
import torch

from tomolearn import solvers as S
from tomolearn.ct import ParallelBeam2D, RayTransform
from tomolearn.operators import Identity, MatrixOperator
from tomolearn.phantoms import shepp_logan
from tomolearn.solvers import algebraic


def _matrix(seed=0, m=30, n=12, batch=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, n, generator=g, dtype=dtype)
    y = torch.randn((batch, 1, m), generator=g, dtype=dtype)
    return MatrixOperator(a), a, y


def _solve(a, y, reg=0.0, weights=None):
    """Closed form of ``1/2 ||A x - y||_W^2 + reg/2 ||x||^2`` for every row of ``y``."""
    m, n = a.shape
    w = torch.ones(m, dtype=a.real.dtype) if weights is None else weights
    lhs = a.conj().T @ (w[:, None] * a) + reg * torch.eye(n, dtype=a.dtype)
    rhs = a.conj().T @ (w[:, None] * y.reshape(-1, m).T)
    return torch.linalg.solve(lhs, rhs).T.reshape(y.shape[:2] + (n,))


def _ct(n=12, n_angles=10, batch=2):
    op = RayTransform(ParallelBeam2D(n_angles=n_angles, n_detectors=2 * n), (n, n))
    x = torch.stack([shepp_logan(n), shepp_logan(n).flip(-1)])[:batch, None]
    y = op(x)
    g = torch.Generator().manual_seed(1)
    return op, x, y + 0.02 * y.abs().mean() * torch.randn(y.shape, generator=g, dtype=y.dtype)


class SoftThreshold(S.Regulariser):
    """``weight ||x||_1`` through ``_prox`` only: how a plug-and-play denoiser plugs in."""

    proximable = True

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def _value(self, x):
        return self.weight * x.abs().flatten(2).sum(dim=-1)

    def _prox(self, v, gamma):
        return torch.sign(v) * (v.abs() - gamma * self.weight).clamp_min(0)


class SmoothOnly(S.Regulariser):
    """A smooth learned-style regulariser without a prox: ``1/4 sum x^4``."""

    smooth = True

    def _value(self, x):
        return 0.25 * (x ** 4).flatten(2).sum(dim=-1)

    def gradient(self, x):
        return x ** 3


# -- known solutions -------------------------------------------------------------------------------
TIKHONOV_RUNS = {
    "gradient_descent": lambda op, y, r: S.gradient_descent(op, y, None, r, n_iter=600),
    "nesterov": lambda op, y, r: S.gradient_descent(op, y, None, r, n_iter=300, nesterov=True),
    "fista": lambda op, y, r: S.fista(op, y, None, r, n_iter=300),
    "ista": lambda op, y, r: S.fista(op, y, None, r, n_iter=600, momentum=False),
    "pdhg": lambda op, y, r: S.pdhg(op, y, None, r, n_iter=1000, ratio=1.0),
    "admm": lambda op, y, r: S.admm(op, y, None, r, n_iter=200),
    "cgls": lambda op, y, r: algebraic.cgls(op, y, None, r, n_iter=30),
}


@pytest.mark.parametrize("scheme", sorted(TIKHONOV_RUNS))
def test_every_scheme_reaches_the_tikhonov_closed_form(scheme):
    op, a, y = _matrix()
    ref = _solve(a, y, reg=2.0)
    res = TIKHONOV_RUNS[scheme](op, y, S.Tikhonov(2.0))
    torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-9)
    # the recorded objective is the Tikhonov objective at the returned iterate
    expected = S.LeastSquares().value(op, res.x, y) + S.Tikhonov(2.0).value(res.x)
    torch.testing.assert_close(res.objective[-1], expected, rtol=1e-12, atol=0)


def test_hqs_solves_its_penalised_problem_and_approaches_the_minimiser():
    op, a, y = _matrix(seed=3)
    lam, mu = 2.0, 10.0
    # fixed mu: min 1/2||Ax-y||^2 + lam/2||z||^2 + mu/2||x-z||^2  =>  x Tikhonov with lam mu/(lam+mu)
    x_pen = _solve(a, y, reg=lam * mu / (lam + mu))
    res = S.hqs(op, y, None, S.Tikhonov(lam), mu=mu, rescale=False, n_iter=300)
    torch.testing.assert_close(res.x, mu / (lam + mu) * x_pen, rtol=0, atol=1e-9)
    # a growing mu (the default schedule) approaches the minimiser of the unpenalised problem,
    # slowly (a penalty method): stated tolerance 5e-3 relative after 400 iterations
    ref = _solve(a, y, reg=lam)
    errors = [float((S.hqs(op, y, None, S.Tikhonov(lam), n_iter=n).x - ref).abs().max())
              / float(ref.abs().max()) for n in (100, 400)]
    assert errors[1] < 5e-3 and errors[1] < 0.5 * errors[0], errors


def test_weighted_least_squares_closed_form():
    op, a, y = _matrix(seed=4)
    w = torch.rand(30, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.2
    ref = _solve(a, y, reg=0.5, weights=w)
    fid = S.WeightedLeastSquares(w)
    for res in (algebraic.cgls(op, y, fid, S.Tikhonov(0.5), n_iter=40),
                S.fista(op, y, fid, S.Tikhonov(0.5), n_iter=600),
                S.admm(op, y, fid, S.Tikhonov(0.5), n_iter=300),
                S.pdhg(op, y, fid, S.Tikhonov(0.5), n_iter=2000, ratio=1.0)):
        torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-8)


def test_a_plugged_in_prox_reaches_soft_thresholding():
    g = torch.Generator().manual_seed(6)
    y = torch.randn(2, 1, 40, generator=g, dtype=torch.float64)
    op, reg = Identity((40,)), SoftThreshold(0.3)
    ref = torch.sign(y) * (y.abs() - 0.3).clamp_min(0)
    for res in (S.fista(op, y, None, reg, n_iter=50), S.admm(op, y, None, reg, n_iter=300),
                S.pdhg(op, y, None, reg, n_iter=2000, ratio=1.0)):
        torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("scheme", ["gradient_descent", "fista", "pdhg", "admm", "hqs", "cgls"])
def test_complex_least_squares_converges(scheme):
    op, a, y = _matrix(seed=7, m=20, n=8, batch=1, dtype=torch.complex128)
    ref = _solve(a, y)
    res = {
        "gradient_descent": lambda: S.gradient_descent(op, y, n_iter=3000, nesterov=True),
        "fista": lambda: S.fista(op, y, n_iter=3000),
        "pdhg": lambda: S.pdhg(op, y, n_iter=3000, ratio=1.0),
        "admm": lambda: S.admm(op, y, n_iter=300),
        "hqs": lambda: S.hqs(op, y, n_iter=300),
        "cgls": lambda: algebraic.cgls(op, y, n_iter=20),
    }[scheme]()
    assert res.x.dtype == torch.complex128 and res.objective.dtype == torch.float64
    tol = 1e-6 if scheme == "hqs" else 1e-9  # HQS without regulariser: mu only slows the x-step
    torch.testing.assert_close(res.x, ref, rtol=0, atol=tol)


# -- agreement on one TV problem --------------------------------------------------------------------
def test_fista_pdhg_admm_hqs_agree_on_a_tv_problem():
    op, x, y = _ct()
    tv = S.TotalVariation(0.3, lower=0.0, inner_iter=20)
    ref = S.pdhg(op, y, None, tv, n_iter=3000)
    runs = {"fista": S.fista(op, y, None, tv, n_iter=800),
            "admm": S.admm(op, y, None, tv, n_iter=250)}
    for name, res in runs.items():
        rel = ((res.objective[-1] - ref.objective[-1]) / ref.objective[-1]).abs().max()
        assert rel < 1e-6, (name, rel)
        assert float((res.x - ref.x).abs().max()) < 1e-3, name
    # HQS is a penalty method: close, not exact (stated tolerance 1e-3 in the objective)
    hqs = S.hqs(op, y, None, tv, n_iter=300, mu=(0.01, 100.0))
    assert ((hqs.objective[-1] - ref.objective[-1]) / ref.objective[-1]).abs().max() < 1e-3
    assert float((hqs.x - ref.x).abs().max()) < 0.05
    # the classical wrappers are these schemes
    torch.testing.assert_close(S.tv_pdhg(op, y, 0.3, n_iter=50).x,
                               S.pdhg(op, y, None, S.TotalVariation(0.3, lower=0.0), n_iter=50).x,
                               rtol=0, atol=0)


# -- monotone schemes ---------------------------------------------------------------------------------
def test_objective_is_monotone_for_the_monotone_schemes():
    op, x, y = _ct()
    w = 1.0 / (1.0 + y.abs())
    runs = {
        "gradient_descent": S.gradient_descent(op, y, None, S.Tikhonov(0.5) + S.Positivity(), n_iter=80),
        "ista": S.fista(op, y, None, S.TotalVariation(0.2, lower=0.0), n_iter=80, momentum=False),
        "cgls": algebraic.cgls(op, y, S.WeightedLeastSquares(w), S.Tikhonov(0.1), n_iter=30),
        "sirt": algebraic.sirt(op, y, S.Box(0.0, 1.0), n_iter=80),
    }
    for name, res in runs.items():
        obj = res.objective
        assert (obj[1:] <= obj[:-1] * (1 + 1e-10)).all(), name
        assert obj[-1].sum() < 0.5 * obj[0].sum(), name


def test_poisson_em_increases_the_likelihood_monotonically():
    op, x, _ = _ct()
    background = 0.3 + 0.2 * torch.rand(op.range_shape, generator=torch.Generator().manual_seed(8),
                                        dtype=torch.float64)
    y = torch.poisson(op(x) + background, generator=torch.Generator().manual_seed(9))
    fid = S.PoissonLikelihood(background)
    res = S.em(op, y, fid, n_iter=60)
    ll = res.objective
    assert (ll[1:] >= ll[:-1] - 1e-10 * ll[:-1].abs()).all()
    assert (res.x >= 0).all() and ll[-1].sum() > ll[0].sum()
    torch.testing.assert_close(ll[-1], -fid.value(op, res.x, y), rtol=1e-12, atol=0)
    # OSEM with the operator's own subsets equals OSEM with the generic row restriction
    own = S.em(op, y, fid, subsets=3, n_iter=4)
    generic = S.em(op * 1.0, y, fid, subsets=3, n_iter=4)  # a scaled operator has no subset method
    torch.testing.assert_close(own.x, generic.x, rtol=1e-9, atol=1e-9)
    # the ML solution by splitting schemes agrees with long EM (same likelihood)
    long_em = S.em(op, y, fid, n_iter=1500)
    admm = S.admm(op, y, fid, S.Positivity(), n_iter=400)
    torch.testing.assert_close(-admm.objective[-1], long_em.objective[-1], rtol=1e-5, atol=0)


# -- boxes -------------------------------------------------------------------------------------------
def test_box_keeps_every_iterate_in_bounds():
    op, x, y = _ct()
    lo, hi = 0.05, 0.5
    box = S.Box(lo, hi)
    runs = {
        "gradient_descent": lambda cb: S.gradient_descent(op, y, None, box, n_iter=30, nesterov=True,
                                                          callback=cb),
        "fista": lambda cb: S.fista(op, y, None, S.TotalVariation(0.3) + box, n_iter=30, callback=cb),
        "pdhg": lambda cb: S.pdhg(op, y, None, S.TotalVariation(0.3) + box, n_iter=30, callback=cb),
        "admm": lambda cb: S.admm(op, y, None, S.TotalVariation(0.3) + box, n_iter=30, callback=cb),
        "hqs": lambda cb: S.hqs(op, y, None, S.Tikhonov(0.1) + box, n_iter=30, callback=cb),
        "sirt": lambda cb: algebraic.sirt(op, y, box, n_iter=30, callback=cb),
    }
    for name, run in runs.items():
        seen = []
        res = run(lambda k, xk, obj: seen.append((float(xk.min()), float(xk.max()))))
        assert len(seen) == 30 and res.x.min() >= lo and res.x.max() <= hi, name
        assert all(lo <= a and b <= hi for a, b in seen), name
        assert torch.isfinite(res.objective).all(), name  # the box term is 0 on feasible iterates
    assert S.Box(lo, hi).value(torch.full((1, 1, 2, 2), 0.7)).item() == math.inf


# -- the protocols' pieces ---------------------------------------------------------------------------
@pytest.mark.parametrize("fid", [S.LeastSquares(), S.WeightedLeastSquares(torch.linspace(0.5, 2, 30)),
                                 S.PoissonLikelihood(0.7)])
def test_fidelity_gradient_prox_and_conjugate_prox(fid):
    op, a, _ = _matrix(seed=10)
    op = MatrixOperator(a.abs())  # non-negative, so the Poisson mean is positive
    g = torch.Generator().manual_seed(11)
    x = torch.rand(2, 1, 12, generator=g, dtype=torch.float64)
    y = torch.poisson(op(x) + 0.7, generator=g)
    if isinstance(fid, S.WeightedLeastSquares):
        fid = S.WeightedLeastSquares(fid.weights.to(torch.float64))
    # gradient = autograd of value
    xr = x.clone().requires_grad_(True)
    fid.value(op, xr, y).sum().backward()
    torch.testing.assert_close(fid.gradient(op, x, y), xr.grad, rtol=1e-10, atol=1e-10)
    # prox optimality: (u - v) / gamma + grad F(u) = 0
    v, gamma = op(x) + 0.3, 0.7
    u = fid.prox(v, y, gamma)
    torch.testing.assert_close((u - v) / gamma + fid.data_gradient(u, y), torch.zeros_like(u),
                               rtol=0, atol=1e-10)
    # Moreau: v = prox_{sigma F*}(v) + sigma prox_{F/sigma}(v / sigma)
    sigma = 0.4
    torch.testing.assert_close(fid.prox_conjugate(v, y, sigma) + sigma * fid.prox(v / sigma, y, 1 / sigma),
                               v, rtol=1e-10, atol=1e-10)


def test_regulariser_protocol():
    g = torch.Generator().manual_seed(12)
    v = torch.randn(2, 1, 6, 7, generator=g, dtype=torch.float64)
    tik = S.Tikhonov(2.0, lower=-0.2)
    torch.testing.assert_close(tik.prox(v, 0.5), (v / 2.0).clamp_min(-0.2))
    torch.testing.assert_close(tik.gradient(v), 2.0 * v)
    tv_box = S.TotalVariation(0.1) + S.Box(0.0, None) + S.Box(None, 0.8)
    assert tv_box.proximable and not tv_box.smooth and (tv_box.lower, tv_box.upper) == (0.0, 0.8)
    torch.testing.assert_close(tv_box.prox(v, 1.0), S.tv_prox(v, 0.1, n_iter=10, lower=0.0, upper=0.8))
    tv = S.TotalVariation(0.5)
    torch.testing.assert_close(tv.value(v), 0.5 * S.total_variation(v).reshape(2, 1))
    p = torch.randn(2, 1, 2, 6, 7, generator=g, dtype=torch.float64)  # D^H is the adjoint of D
    assert float((tv.linear(v) * p).sum()) == pytest.approx(float((v * tv.linear_adjoint(p)).sum()))
    smooth_box = SmoothOnly() + S.Positivity()
    assert smooth_box.smooth and not smooth_box.proximable
    torch.testing.assert_close(smooth_box.gradient(v), v ** 3)
    res = S.gradient_descent(Identity((6, 7)), v, None, smooth_box, n_iter=200, step=0.2)
    # minimiser of 1/2 (x - v)^2 + x^4/4 on x >= 0: x + x^3 = v where v > 0, else 0
    x = res.x
    torch.testing.assert_close(torch.where(v > 0, x + x ** 3, x), v.clamp_min(0), rtol=0, atol=1e-9)


@pytest.mark.parametrize("scheme", ["pdhg", "admm", "hqs", "em"])
def test_batch_equals_each_problem_alone(scheme):
    op, x, y = _ct()
    y = y.clamp_min(0)
    run = {
        "pdhg": lambda d: S.pdhg(op, d, S.PoissonLikelihood(0.2), S.TotalVariation(0.3), n_iter=20),
        "admm": lambda d: S.admm(op, d, None, S.TotalVariation(0.3, lower=0.0), n_iter=10),
        "hqs": lambda d: S.hqs(op, d, None, S.Tikhonov(0.2), n_iter=10),
        "em": lambda d: S.em(op * 1.0, d, S.PoissonLikelihood(0.2), subsets=2, n_iter=5),
    }[scheme]
    both = run(y).x
    for b in range(2):
        torch.testing.assert_close(both[b:b + 1], run(y[b:b + 1]).x, rtol=1e-9, atol=1e-9)


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_input_names_expected_and_given():
    op, x, y = _ct()
    with pytest.raises(ValueError, match=r"TotalVariation: the regularisation weight must be a "
                                         r"non-negative finite number, got -0\.5"):
        S.TotalVariation(-0.5)
    with pytest.raises(ValueError, match=r"Tikhonov: .*non-negative.*got -1"):
        S.Tikhonov(-1)
    with pytest.raises(ValueError, match=r"expects shape \(B, C, 10, 24\), got \(2, 1, 10, 23\)"):
        S.fista(op, y[..., :-1], None, S.TotalVariation(0.1))
    with pytest.raises(ValueError, match=r"x0 must have shape \(2, 1, 12, 12\), got \(2, 1, 3, 3\)"):
        S.admm(op, y, x0=torch.zeros(2, 1, 3, 3))
    with pytest.raises(TypeError, match=r"fista needs a regulariser with a prox \(proximable=True\); "
                                        r"got SmoothOnly \(smooth=True, proximable=False\)"):
        S.fista(op, y, None, SmoothOnly())
    with pytest.raises(TypeError, match=r"gradient_descent needs a smooth regulariser.*got TotalVariation"):
        S.gradient_descent(op, y, None, S.TotalVariation(0.1))
    with pytest.raises(TypeError, match=r"admm needs a regulariser with a prox.*got RegulariserSum"):
        S.admm(op, y, None, SmoothOnly() + S.Positivity())
    with pytest.raises(TypeError, match=r"fidelity must be a DataFidelity, got str"):
        S.pdhg(op, y, "least squares")
    with pytest.raises(TypeError, match=r"regulariser must be a Regulariser, got float"):
        S.fista(op, y, None, 0.3)
    with pytest.raises(TypeError, match=r"hqs needs a quadratic fidelity .*got PoissonLikelihood"):
        S.hqs(op, y.clamp_min(0), S.PoissonLikelihood())
    with pytest.raises(ValueError, match=r"no Lipschitz constant known for PoissonLikelihood; pass step="):
        S.gradient_descent(op, y.clamp_min(0), S.PoissonLikelihood())
    with pytest.raises(ValueError, match=r"weights of shape \(5,\) must broadcast to the data shape "
                                         r"\(2, 1, 10, 24\)"):
        S.fista(op, y, S.WeightedLeastSquares(torch.ones(5)))
    with pytest.raises(ValueError, match=r"PoissonLikelihood needs non-negative data"):
        S.em(op, y - 10)
    with pytest.raises(TypeError, match=r"em needs a PoissonLikelihood fidelity, got LeastSquares"):
        S.em(op, y.clamp_min(0), S.LeastSquares())
    with pytest.raises(ValueError, match=r"n_subsets must be an int in \[1, 10\], got 11"):
        S.em(op, y.clamp_min(0), subsets=11)
    with pytest.raises(ValueError, match=r"TotalVariation needs images of shape .* got shape \(2, 1, 12\)"):
        S.fista(MatrixOperator(torch.randn(30, 12, dtype=torch.float64)), torch.zeros(2, 1, 30,
                dtype=torch.float64), None, S.TotalVariation(0.1))
    with pytest.raises(ValueError, match=r"Box: lower must be <= upper, got lower=1.0, upper=0.0"):
        S.Box(1.0, 0.0)
    with pytest.raises(TypeError, match=r"cgls takes no regulariser or an unbounded Tikhonov; "
                                        r"got TotalVariation"):
        algebraic.cgls(op, y, None, S.TotalVariation(0.1))
    with pytest.raises(ValueError, match=r"rho must be positive and finite, got -1.0"):
        S.admm(op, y, rho=-1)
    with pytest.raises(ValueError, match=r"hqs: mu must be a positive float or a pair"):
        S.hqs(op, y, mu=(1.0, 2.0, 3.0))
