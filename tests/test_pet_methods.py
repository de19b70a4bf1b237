"""PET reconstruction: MLEM monotonicity, OSEM with one subset is MLEM, non-negativity,
convergence to the truth on noiseless data, the clinical protocol."""

import pytest
import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.modalities import pet
from tomolearn.registry import build_method
from tomolearn.solvers import em
from tomolearn.solvers.fidelities import PoissonLikelihood, _log_likelihood
from tomolearn.solvers.pet_methods import poisson_deviance

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small():
    t = pet.PETTask.tiny().replace(counts=1e5)
    y, x = SimulatedDataset("pet-torso", "test", t, size=2, dtype=torch.float64).batch([0, 1])
    return t, y, x


def test_mlem_increases_the_log_likelihood_monotonically(small):
    t, y, _ = small
    op = t.operator()
    b = op.background_of(y)
    lls = []
    em(op, y, PoissonLikelihood(b), n_iter=15,
       callback=lambda k, x, obj: lls.append(_log_likelihood(op(x) + b, y)))
    ll = torch.stack(lls)[:, :, 0]  # (iterations, B)
    assert (ll[1:] - ll[:-1] >= -1e-9 * ll.abs()[1:]).all()
    assert (ll[-1] > ll[0]).all()
    # the registered method's history is the Poisson deviance: non-negative and non-increasing
    dev = build_method("mlem", t, params={"n_iter": 15}).solve(y).objective[:, :, 0]
    assert (dev >= 0).all() and (dev[1:] <= dev[:-1] * (1 + 1e-12)).all()


def test_osem_with_one_subset_is_mlem_and_stays_non_negative(small):
    t, y, _ = small
    mlem = build_method("mlem", t, params={"n_iter": 7})(y)
    osem1 = build_method("osem", t, params={"n_iter": 7, "n_subsets": 1})(y)
    torch.testing.assert_close(osem1, mlem, rtol=1e-12, atol=1e-12)
    osem = build_method("osem", t)(y)  # the mCT protocol, 3 x 21
    assert (osem >= 0).all() and (mlem >= 0).all() and torch.isfinite(osem).all()
    assert not torch.allclose(osem, mlem)


def test_mlem_converges_to_the_truth_on_noiseless_consistent_data():
    t = pet.PETTask(image_size=16, view_mash=4, bin_mash=8, psf_fwhm_mm=0.0, fine_factor=1,
                    body="cylinder")
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    truth = (1.0 + ((yy - 6) ** 2 + (xx - 9) ** 2 < 9).double() * 3)[None, None]
    truth = truth * (((yy - 7.5) ** 2 + (xx - 7.5) ** 2) < 49).double()
    op = t.operator()
    y = op(truth)  # expected trues, no background, the reconstruction grid (inverse crime)
    x = em(op, y, PoissonLikelihood(0.0), n_iter=2000).x
    err = float((x - truth).norm() / truth.norm())
    early = float((em(op, y, PoissonLikelihood(0.0), n_iter=20).x - truth).norm() / truth.norm())
    assert err < 0.02 and err < early / 3


def test_osem_filtered_is_smoother_than_osem(small):
    t, y, x = small
    osem = build_method("osem", t)(y)
    filt = build_method("osem-filtered", t, params={"filter_fwhm_mm": 20.0})(y)
    tv = lambda im: float((im[..., 1:, :] - im[..., :-1, :]).abs().sum())  # noqa: E731
    assert tv(filt) < 0.8 * tv(osem)
    torch.testing.assert_close(filt.sum(), osem.sum(), rtol=0.05, atol=0)


def test_methods_refuse_other_tasks_and_wrong_shapes(small):
    t, y, _ = small
    assert {"mlem", "osem", "osem-filtered"} <= set(tl.methods(t))
    with pytest.raises(ValueError, match="does not support task 'ct'"):
        build_method("osem", "ct")
    with pytest.raises(ValueError, match="shape"):
        build_method("osem", t)(y[..., :-1])


def test_poisson_deviance_is_zero_at_the_data():
    y = torch.tensor([[[[0.0, 1.0, 5.0]]]], dtype=torch.float64)
    assert float(poisson_deviance(y.clamp_min(1e-300), y)) == pytest.approx(0.0, abs=1e-9)
    assert float(poisson_deviance(y + 1, y)) > 0
