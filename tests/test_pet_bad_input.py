"""PET bad input: negative or non-finite counts, mu-maps of the wrong shape or unit, subsets
that do not divide the views -- each a ValueError saying what was expected, before any work.
(An Interfile header naming a missing data file: tests/test_pet_files.py.)"""

import numpy as np
import pytest
import torch

from tomolearn.data import SimulatedDataset
from tomolearn.modalities import pet
from tomolearn.registry import build_method
from tomolearn.solvers.pet_methods import check_counts, n_subsets_for

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    t = pet.PETTask.tiny().replace(counts=1e5)
    y, x = SimulatedDataset("pet-torso", "test", t, size=1, dtype=torch.float64).batch([0])
    return t, y, x


@pytest.mark.parametrize("name", ["mlem", "osem", "osem-filtered", "rdp-map"])
def test_negative_counts_are_refused_naming_the_value(small, name):
    t, y, _ = small
    bad = y.clone()
    bad[0, 0, 3, 7] = -3.5
    with pytest.raises(ValueError, match=r"1 negative value\(s\), the lowest -3\.5 at index "
                                         r"\(0, 0, 3, 7\)"):
        build_method(name, t, params={"n_iter": 1})(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_counts_are_refused(small, value):
    t, y, _ = small
    bad = y.clone()
    bad[0, 0, 0, 1] = value
    with pytest.raises(ValueError, match=r"finite, >= 0\); got 1 non-finite value\(s\), the "
                                         rf"first {value} at index \(0, 0, 0, 1\)"):
        build_method("osem", t)(bad)
    assert check_counts(y) is y  # valid counts pass through untouched


def test_subsets_must_divide_the_views(small):
    t, y, _ = small
    op = t.operator()
    assert op.range_shape[0] == 21
    with pytest.raises(ValueError, match=r"n_subsets=4 does not divide the 21 views of the "
                                         r"sinogram into equal subsets; use one of 1, 3, 7, 21"):
        build_method("osem", t, params={"n_subsets": 4})
    with pytest.raises(ValueError, match="n_subsets=5 does not divide the 21 views"):
        build_method("rdp-map", t, params={"n_subsets": 5})
    assert n_subsets_for(op, 7) == 7
    assert n_subsets_for(op, None, 21) == 21 and n_subsets_for(op, None, 6) == 3
    # a mashed sinogram with fewer views than the scanner's 21 subsets: the largest divisor
    mashed = pet.PETTask(image_size=32, view_mash=12, bin_mash=8)
    assert n_subsets_for(mashed.operator(), None, 21) == 14
    out = build_method("osem", t, params={"n_subsets": 3})(y)
    assert out.shape == (1, 1, 32, 32) and bool(torch.isfinite(out).all())


def test_mu_map_of_the_wrong_shape_is_refused(small):
    t, _, _ = small
    with pytest.raises(ValueError, match=r"mu-map must have shape \(32, 32\) \(the task's image "
                                         r"grid.*got \(64, 64\)"):
        t.operator_with_mu(np.zeros((64, 64)))
    with pytest.raises(ValueError, match=r"got \(32,\)"):
        pet.check_mu_map(np.zeros(32), (32, 32))


@pytest.mark.parametrize("scale, unit", [(10.0, r"1/cm \(divide by 10\)"),
                                         (1000.0, r"1/m \(divide by 1000\)"),
                                         (1e5, "Hounsfield units")])
def test_mu_map_in_another_unit_is_refused_naming_the_expected_one(small, scale, unit):
    t, _, _ = small
    mu = t.mu_map() * scale
    with pytest.raises(ValueError, match=r"linear attenuation coefficient at 511 keV in 1/mm, in "
                                         r"\[0, 0.05\] \(air 0, lung 0.0029, water 0.0096, bone "
                                         rf"0.013-0.017\); got a maximum of .*looks like {unit}"):
        t.operator_with_mu(mu)


def test_negative_or_non_finite_mu_map_is_refused(small):
    t, _, _ = small
    hu = np.full((32, 32), -1000.0)
    with pytest.raises(ValueError, match="got a minimum of -1000; Hounsfield units"):
        pet.check_mu_map(hu, (32, 32))
    with pytest.raises(ValueError, match="got a minimum of -0.001$"):
        pet.check_mu_map(np.full((32, 32), -0.001), (32, 32))
    mu = t.mu_map().clone()
    mu[4, 4] = float("nan")
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\)"):
        pet.check_mu_map(mu, (32, 32))


def test_a_valid_mu_map_gives_the_tasks_operator(small):
    t, _, _ = small
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    op = t.operator_with_mu(t.mu_map(shifted=True).numpy())
    torch.testing.assert_close(op(x), t.operator()(x))
    flat = t.operator_with_mu(np.zeros((32, 32)))  # no attenuation: more counts on every LOR
    assert bool((flat(x) >= op(x) - 1e-12).all())
    assert float(flat(x).sum()) > 1.5 * float(op(x).sum())
