"""Tests of the learned reconstruction networks (tiny sizes, CPU, fast)."""

import math

import pytest
import torch

import tomolearn as tl
from tomolearn.learned import FBPConvNet, LearnedGradientDescent, LearnedPrimalDual, UNet

N = 32


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def op():
    return tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=46), (N, N))


@pytest.fixture(scope="module")
def batch(op):
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 1, N, N)
    x[:, :, 8:24, 10:22] = 1.0
    x += 0.3 * torch.rand(2, 1, N, N, generator=g)
    return op(x), x


def small_unet(norm="none"):
    return UNet(1, 1, channels=8, depth=2, norm=norm)


def make(name, op, norm="none"):
    if name == "fbpconvnet":
        return FBPConvNet(op, unet=small_unet(norm))
    if name == "lgd":
        return LearnedGradientDescent(op, n_iter=3, channels=16)
    if name == "lpd":
        return LearnedPrimalDual(op, n_iter=3, channels=16)
    raise AssertionError(name)


MODELS = ["fbpconvnet", "lgd", "lpd"]


# -- shapes, dtypes ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shape_and_dtype(name, dtype, op, batch):
    torch.manual_seed(0)
    model = make(name, op).to(dtype)
    y = batch[0].to(dtype)
    out = model(y)
    assert out.shape == (2, 1, N, N)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()


def test_default_models_shapes(op, batch):
    torch.manual_seed(0)
    y = batch[0][:1]
    assert LearnedPrimalDual(op)(y).shape == (1, 1, N, N)
    assert LearnedGradientDescent(op)(y).shape == (1, 1, N, N)
    assert LearnedGradientDescent(op, n_iter=2, init="initial")(y).shape == (1, 1, N, N)


@pytest.mark.parametrize("shape", [(32, 32), (33, 29), (7, 5), (1, 1)])
@pytest.mark.parametrize("up", ["transpose", "bilinear"])
def test_unet_any_size(shape, up):
    torch.manual_seed(0)
    net = UNet(2, 3, channels=4, depth=3, norm="group", up=up)
    out = net(torch.randn(2, 2, *shape))
    assert out.shape == (2, 3) + shape


def test_unet_default_parameter_count():
    # 32 -> 512 channels over 5 levels, transposed-conv up-sampling, batch norm.
    assert UNet().n_parameters == 7_762_465


def test_bad_inputs_raise(op, batch):
    model = make("lpd", op)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 46\)"):
        model(torch.zeros(2, 1, 9, 46))
    with pytest.raises(ValueError, match="expects measurements"):
        model(torch.zeros(2, 2, 8, 46))
    with pytest.raises(ValueError, match="norm"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match=r"UNet expects shape \(B, 1, H, W\), got \(1, 2, 8, 8\)"):
        small_unet()(torch.zeros(1, 2, 8, 8))


# -- training -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_backprop_gives_finite_grads_for_all_parameters(name, op, batch):
    torch.manual_seed(0)
    model = make(name, op, norm="batch")
    y, x = batch
    loss = ((model(y) - x) ** 2).mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_overfit_one_batch(name, op, batch):
    torch.manual_seed(0)
    model = make(name, op)
    y, x = batch
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((model(y) - x) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


# -- LPD as published ------------------------------------------------------------------------
def test_lpd_default_parameter_count(op):
    model = LearnedPrimalDual(op)
    # per iteration: dual 7->32->32->5 (2048 + 9248 + 1445), primal 6->32->32->5
    # (1760 + 9248 + 1445), 4 x 32 PReLU slopes; times 10 iterations.
    assert model.n_parameters == 253_220
    assert 0.24e6 < model.n_parameters < 0.26e6
    assert len(model.dual_blocks) == len(model.primal_blocks) == 10
    assert model.dual_blocks[0][0].in_channels == 5 + 2
    assert model.primal_blocks[0][0].in_channels == 5 + 1
    assert model.dual_blocks[0][-1].out_channels == 5
    assert model.primal_blocks[0][-1].out_channels == 5
    prelu = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelu) == 40 and all((m.weight == 0).all() for m in prelu)


def test_lpd_operator_is_normalised(op, batch):
    model = LearnedPrimalDual(op, n_iter=2)
    assert model.operator_scale == pytest.approx(1 / op.norm(), rel=1e-12)
    # The normalisation makes the model invariant to the operator's scale (with y scaled alike).
    torch.manual_seed(0)
    model = LearnedPrimalDual(op, n_iter=2).double()
    model2 = LearnedPrimalDual(3.0 * op, n_iter=2).double()
    model2.load_state_dict(model.state_dict())
    assert model2.operator_scale == pytest.approx(model.operator_scale / 3, rel=1e-9)
    y = batch[0].double()
    torch.testing.assert_close(model2(3.0 * y), model(y), rtol=1e-7, atol=1e-9)


def test_lgd_operator_is_normalised(op):
    assert LearnedGradientDescent(op, n_iter=1).operator_scale == pytest.approx(1 / op.norm())


# -- operator binding -----------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_geometry_spec_and_state_dict(name, op):
    model = make(name, op)
    spec = model.geometry_spec
    assert spec["operator"] == "RayTransform"
    assert spec["domain_shape"] == [N, N] and spec["range_shape"] == [8, 46]
    assert spec["geometry"] == op.spec()["geometry"]
    # The operator is bound, not registered: only weights are in the state dict.
    assert all(not k.startswith("op.") for k in model.state_dict())
    assert sum(v.numel() for k, v in model.state_dict().items()
               if "running" not in k and "num_batches" not in k) == model.n_parameters


@pytest.mark.parametrize("name", MODELS)
def test_with_operator_more_angles(name, op, batch):
    torch.manual_seed(0)
    model = make(name, op)
    op2 = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=16, n_detectors=46), (N, N))
    model.check_operator(op2)
    model2 = model.with_operator(op2)
    assert model2.op is op2 and model.op is op
    assert model2.geometry_spec["range_shape"] == [16, 46]
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), k
        assert a.data_ptr() != b.data_ptr()  # a copy
    out = model2(op2(batch[1]))
    assert out.shape == (2, 1, N, N)
    if hasattr(model2, "operator_scale"):
        assert model2.operator_scale == pytest.approx(1 / op2.norm())


@pytest.mark.parametrize("name", MODELS)
def test_with_operator_refuses_other_image_shape_or_geometry(name, op):
    model = make(name, op)
    op_big = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=46), (40, 40))
    with pytest.raises(ValueError, match=r"image shape \(32, 32\).*\(40, 40\)"):
        model.with_operator(op_big)
    fan = tl.ct.FanBeam2D(n_angles=8, n_detectors=46, source_radius=100.0, detector_radius=50.0)
    with pytest.raises(ValueError, match="ParallelBeam2D.*FanBeam2D"):
        model.check_operator(tl.ct.RayTransform(fan, (N, N)))
    ident = tl.operators.Identity((N, N))
    with pytest.raises(ValueError, match="RayTransform.*Identity"):
        model.check_operator(ident)


# -- determinism and batch independence -----------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_deterministic_under_manual_seed(name, op, batch):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = make(name, op)
        outs.append((model(batch[0]), [p.detach().clone() for p in model.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("norm", ["group", "none"])
def test_eval_batch_equals_per_sample(name, norm, op, batch):
    torch.manual_seed(0)
    model = make(name, op, norm=norm).eval()
    y = batch[0]
    with torch.no_grad():
        full = model(y)
        single = torch.cat([model(y[i:i + 1]) for i in range(y.shape[0])])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-6)


def test_n_parameters_matches_sum(op):
    for model in (make(n, op) for n in MODELS):
        assert model.n_parameters == sum(p.numel() for p in model.parameters())
    lgd = LearnedGradientDescent(op)
    assert lgd.n_parameters == 10 * (2 * 32 * 9 + 32 + 32 * 32 * 9 + 32 + 32 * 9 + 1 + 64)
    assert math.isclose(lgd.n_parameters, 102_090)


def test_deep_ensemble_mean_members_and_rebinding(op, batch):
    from tomolearn.learned import DeepEnsemble

    y, _ = batch
    members = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        members.append(make("lpd", op))
    ens = DeepEnsemble(members).eval()
    with torch.no_grad():
        each = ens.members(y)
        assert each.shape == (3,) + tuple(y.shape[:1]) + (1, N, N)
        for k, m in enumerate(members):
            assert torch.equal(each[k], m(y))
        assert torch.allclose(ens(y), each.mean(0))
        assert each.std(0).mean() > 0  # independently initialised members disagree
    assert ens.n_members == 3 and ens.n_parameters == sum(m.n_parameters for m in members)
    more = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=16, n_detectors=46), (N, N))
    ens16 = ens.with_operator(more)
    assert ens16.op is more and all(m.op is more for m in ens16.ensemble)
    assert ens16(more(torch.rand(1, 1, N, N))).shape == (1, 1, N, N)
    small = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=23), (16, 16))
    with pytest.raises(ValueError, match="image shape"):
        ens.with_operator(small)
    with pytest.raises(ValueError, match="at least 2 members"):
        DeepEnsemble(members[:1])
    with pytest.raises(ValueError, match="another geometry"):
        DeepEnsemble([members[0], make("lpd", more)])
    with pytest.raises(TypeError, match="reconstructor"):
        DeepEnsemble([members[0], torch.nn.Identity()])


@pytest.mark.parametrize("name", ["fbpconvnet", "lgd", "lpd"])
def test_cpu_inference_in_sub_batches_equals_one_batch(name, op, monkeypatch):
    model = make(name, op, norm="batch" if name == "fbpconvnet" else "none").eval()
    y = op(torch.rand(11, 1, N, N, generator=torch.Generator().manual_seed(3)))
    calls = []
    inner = model._reconstruct
    monkeypatch.setattr(model, "_reconstruct", lambda part: calls.append(len(part)) or inner(part))
    model.inference_chunk = 4
    with torch.no_grad():
        split = model(y)
        assert calls == [4, 4, 3]
        model.inference_chunk = None
        whole = model(y)
    assert calls[-1] == 11
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    model.inference_chunk = 4
    model(y[:5])  # autograd on: one batch (training and gradients see the batch as given)
    model.train()
    with torch.no_grad():
        model(y[:5])  # training mode (batch statistics): one batch
    assert calls[-2:] == [5, 5]


# -- complex data (MRI): real and imaginary parts as channels, coils as data channels ---------
@pytest.fixture(scope="module")
def mri():
    t = tl.task("mri").tiny()
    ds = tl.data.SimulatedDataset("ellipses", "train", t, size=2)
    y, x = ds.batch([0, 1])
    return t.operator(), y, x


def make_complex(name, op):
    if name == "fbpconvnet":
        return FBPConvNet(op, unet=UNet(2, 2, channels=8, depth=2, norm="none"))
    return make(name, op)


@pytest.mark.parametrize("name", MODELS)
def test_complex_data_give_complex_images_and_learn(name, mri):
    op, y, x = mri
    torch.manual_seed(0)
    model = make_complex(name, op)
    assert model.image_channels == 2 and model.data_channels == 2 * op.range_shape[0]
    out = model(y)
    assert out.shape == x.shape and out.dtype == torch.complex64 and torch.isfinite(out).all()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = (model(y) - x).abs().pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    with pytest.raises(TypeError, match="expects complex measurements"):
        model(y.real.contiguous())


def test_channel_views_invert_each_other(mri):
    op, y, x = mri
    model = LearnedPrimalDual(op, n_iter=1, channels=4)
    assert torch.equal(model.channels_to_image(model.image_to_channels(x)), x)
    d = model.data_to_channels(y)
    assert d.shape == (2, model.data_channels) + tuple(op.range_shape[-2:]) and d.dtype == torch.float32
    assert torch.equal(model.channels_to_data(d), y)
    # coil c's real part is channel c, its imaginary part channel n_coils + c
    assert torch.equal(d[:, 1], y[:, 0, 1].real) and torch.equal(d[:, op.range_shape[0] + 1], y[:, 0, 1].imag)


def test_weights_for_real_images_refuse_a_complex_operator(op, mri):
    with pytest.raises(ValueError, match="was built for a RayTransform"):
        LearnedGradientDescent(op, n_iter=1, channels=4).check_operator(mri[0])
