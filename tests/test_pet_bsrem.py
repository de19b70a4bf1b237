"""The relative difference prior and BSREM: gradient, invariances, convergence to a KKT point,
the MLEM limit, non-negativity, the registered ``bsrem`` method."""

import pytest
import torch

from tomolearn.data import SimulatedDataset
from tomolearn.modalities import pet
from tomolearn.registry import build_method
from tomolearn.solvers import em
from tomolearn.solvers.bsrem import bsrem, kkt_residual, penalised_log_likelihood
from tomolearn.solvers.fidelities import PoissonLikelihood
from tomolearn.solvers.rdp import RelativeDifferencePrior
from tomolearn.solvers.regularisers import Positivity

torch.set_num_threads(1)


def _image(seed=0, shape=(2, 1, 6, 7)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64) + 0.05


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_rdp_gradient_matches_finite_differences(gamma):
    x = _image()
    kappa = 0.5 + _image(1, (1, 1, 6, 7))
    prior = RelativeDifferencePrior(0.7, gamma=gamma, epsilon=1e-2, kappa=kappa)
    g = prior.gradient(x)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 0, 2, 3), (0, 0, 5, 6), (1, 0, 0, 6), (0, 0, 3, 0)]:
        e = torch.zeros_like(x)
        e[idx] = h
        fd = (prior.value(x + e) - prior.value(x - e)).sum() / (2 * h)
        assert abs(float(fd) - float(g[idx])) < 1e-7 * max(1.0, abs(float(fd)))
    # and the whole gradient against autograd of the value
    xx = x.clone().requires_grad_(True)
    prior.value(xx).sum().backward()
    torch.testing.assert_close(g, xx.grad, rtol=1e-12, atol=1e-12)


def test_rdp_is_zero_on_constants_symmetric_and_positive_elsewhere():
    prior = RelativeDifferencePrior(1.3, gamma=2.0, epsilon=1e-3)
    const = torch.full((1, 1, 5, 5), 3.7, dtype=torch.float64)
    assert float(prior.value(const).abs().max()) == 0.0
    assert float(prior.gradient(const).abs().max()) == 0.0
    x = _image()
    v = prior.value(x)
    assert (v > 0).all()
    for flipped in (x.flip(-1), x.flip(-2), x.transpose(-1, -2)):  # the neighbourhood's symmetries
        torch.testing.assert_close(prior.value(flipped), v, rtol=1e-12, atol=0)
    # the pair term is symmetric in its two voxels: swapping two neighbours keeps the value
    two = torch.tensor([[[[1.0, 4.0]]]], dtype=torch.float64)
    torch.testing.assert_close(prior.value(two), prior.value(two.flip(-1)))
    # f(1, 4) = 9 / (5 + 2 * 3 + eps) (one horizontal pair, weight 1)
    assert abs(float(prior.value(two)) - 1.3 * 9 / (11 + 1e-3)) < 1e-12
    # gamma reduces the penalty of large relative differences (edge preservation)
    assert float(RelativeDifferencePrior(1.0, gamma=5.0).value(two)) < \
        float(RelativeDifferencePrior(1.0, gamma=0.0).value(two))
    with pytest.raises(ValueError):
        RelativeDifferencePrior(1.0, epsilon=0.0)


@pytest.fixture(scope="module")
def small():
    t = pet.PETTask(image_size=12, view_mash=14, bin_mash=16, counts=2e4, body="cylinder",
                    fov_mm=300.0)
    y, x = SimulatedDataset("pet-torso", "test", t, size=1, dtype=torch.float64).batch([0])
    op = t.operator()
    return t, op, y, PoissonLikelihood(op.background_of(y))


def test_bsrem_objective_increases_to_a_limit_at_a_kkt_point(small):
    t, op, y, fidelity = small
    x0 = em(op, y, fidelity, n_iter=2).x
    prior = RelativeDifferencePrior(2.0, gamma=2.0, epsilon=1e-3 * float(x0.max()))
    res = bsrem(op, y, fidelity, prior, subsets=3, n_iter=400, x0=x0, relaxation=0.05)
    phi = -res.objective[:, 0, 0]  # the penalised log-likelihood per iteration
    assert float(phi[-1]) > float(phi[0])
    # towards a limit: the late changes are tiny against the early ones
    early, late = float(phi[20] - phi[0]), float((phi[-1] - phi[-50]).abs())
    assert late < 1e-3 * early
    # the limit is a KKT point of max L - R s.t. x >= 0, which the start was not
    assert float(kkt_residual(op, res.x, y, fidelity, prior).max()) < 1e-3
    assert float(kkt_residual(op, x0, y, fidelity, prior).max()) > 1e-2
    # without relaxation, ordered subsets stop at a limit cycle further from it
    cycle = bsrem(op, y, fidelity, prior, subsets=3, n_iter=400, x0=x0, relaxation=0.0)
    assert float(kkt_residual(op, cycle.x, y, fidelity, prior).max()) > \
        float(kkt_residual(op, res.x, y, fidelity, prior).max())
    assert (res.x >= 0).all()


def test_bsrem_without_penalty_is_mlem_and_small_beta_tends_to_it(small):
    t, op, y, fidelity = small
    mlem = em(op, y, fidelity, n_iter=10).x
    plain = bsrem(op, y, fidelity, None, n_iter=10, relaxation=0.0, delta=0.0).x
    torch.testing.assert_close(plain, mlem, rtol=1e-10, atol=1e-12)
    dists = []
    for beta in (1e-1, 1e-2, 1e-3):
        prior = RelativeDifferencePrior(beta, gamma=2.0, epsilon=1e-3)
        x = bsrem(op, y, fidelity, prior, n_iter=10, relaxation=0.0, delta=0.0).x
        dists.append(float((x - mlem).norm() / mlem.norm()))
    assert dists[0] > dists[1] > dists[2] and dists[2] < 1e-3


def test_bsrem_keeps_images_non_negative_and_accepts_a_positivity_box(small):
    t, op, y, fidelity = small
    prior = RelativeDifferencePrior(50.0, gamma=2.0, epsilon=1e-3) + Positivity()
    res = bsrem(op, y * 0, fidelity, prior, subsets=4, n_iter=5, step=3.0)  # empty prompts
    assert (res.x >= 0).all() and torch.isfinite(res.x).all()
    assert float(res.x.min()) == 0.0  # the projection is active
    with pytest.raises(TypeError, match="smooth"):
        from tomolearn.solvers import TotalVariation
        bsrem(op, y, fidelity, TotalVariation(1.0), n_iter=1)
    with pytest.raises(ValueError, match="non-negative start"):
        bsrem(op, y, fidelity, None, n_iter=1, x0=-torch.ones((1, 1, 12, 12), dtype=y.dtype))


def test_registered_bsrem_smooths_more_with_beta_and_reports_its_objective():
    t = pet.PETTask.tiny().replace(counts=1e5)
    y, x = SimulatedDataset("pet-torso", "test", t, size=2, dtype=torch.float64).batch([0, 1])
    low = build_method("rdp-map", t, params={"beta": 0.1, "n_iter": 5})
    high = build_method("rdp-map", t, params={"beta": 100.0, "n_iter": 5})
    res = high.solve(y)
    assert res.objective.shape == (5, 2, 1) and (res.objective > 0).all()
    rdp = RelativeDifferencePrior(1.0, gamma=2.0, epsilon=1e-6)
    r_low, r_high = rdp.value(low(y)), rdp.value(res.x)
    assert (r_high < r_low).all()
    assert (res.x >= 0).all()
    # Phi at the registered output is above Phi at the OSEM start it came from
    op = t.operator()
    fidelity = PoissonLikelihood(op.background_of(y))
    start = em(op, y, fidelity, subsets=21, n_iter=1).x
    prior = RelativeDifferencePrior(100.0, 2.0, 1e-3 * start.amax((2, 3), keepdim=True))
    assert (penalised_log_likelihood(op, res.x, y, fidelity, prior) >
            penalised_log_likelihood(op, start, y, fidelity, prior)).all()


def test_tv_on_pet_uses_the_pet_lam_and_subtracts_the_background():
    from tomolearn.registry.methods import method
    from tomolearn.solvers import tv_fista
    t = pet.PETTask.tiny().replace(counts=1e5)
    assert method("tv").params_for(t)["lam"] == 100.0 and method("rdp-map").params_for(t)["beta"] == 2.0
    y, x = SimulatedDataset("pet-torso", "test", t, size=1, dtype=torch.float64).batch([0])
    op = t.operator()
    out = build_method("tv", t, params={"n_iter": 30})(y)
    plain = tv_fista(op, y - op.background_of(y), 100.0, n_iter=30, inner_iter=10).x
    torch.testing.assert_close(out, plain)
    raw = tv_fista(op, y, 100.0, n_iter=30, inner_iter=10).x  # background left in: biased up
    assert float(raw.sum()) > float(out.sum())
