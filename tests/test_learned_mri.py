"""MoDL and the end-to-end VarNet on the tiny "mri" task: shapes, gradients, learning, the exact
properties of their data-consistency steps, the operator protocol, and a tiny training run that
reloads (tiny sizes, CPU, seconds)."""

from pathlib import Path

import pytest
import torch

import tomolearn as tl
from tomolearn.learned import MoDL, VarNet
from tomolearn.learned.varnet import acs_region
from tomolearn.operators.fourier import ifft2c as _ifft2c
from tomolearn.modalities.mri import MultiCoilSENSE, SingleCoilCartesian
from tomolearn.train import load_config, trainer_from_config
from tomolearn.weights import architectures, build_model, register_architecture

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def mri():
    t = tl.task("mri").tiny()
    y, x = tl.data.SimulatedDataset("ellipses", "train", t, size=2).batch([0, 1])
    return t, t.operator(), y, x


def make(name, op):
    if name == "modl":
        return MoDL(op, n_iter=2, channels=8, n_cg=4)
    return VarNet(op, cascades=2, channels=4, sens_channels=2)


def _zero_cnns(model: VarNet) -> None:
    """Zero the last convolution of every U-Net: zero cascade corrections, unrefined maps."""
    with torch.no_grad():
        for net in list(model.cnns) + [model.sens_net]:
            net.unet.outc.weight.zero_()
            net.unet.outc.bias.zero_()


def _loss(out, x):
    return (out - x).abs().pow(2).mean()


NAMES = ["modl", "varnet"]


@pytest.mark.parametrize("name", NAMES)
def test_complex_output_shape_dtype_and_finite(name, mri):
    _, op, y, x = mri
    torch.manual_seed(0)
    model = make(name, op)
    out = model(y)
    assert out.shape == x.shape == (2, 1, 24, 24) and out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()
    with torch.no_grad():
        assert torch.isfinite(torch.view_as_real(model(torch.zeros_like(y)))).all()
    with pytest.raises(TypeError, match="expects complex measurements"):
        model(y.real.contiguous())


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name, mri):
    _, op, y, x = mri
    torch.manual_seed(0)
    model = make(name, op)
    _loss(model(y), x).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_overfit_one_batch(name, mri):
    _, op, y, x = mri
    torch.manual_seed(0)
    model = make(name, op)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = _loss(model(y), x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_default_sizes_and_parameter_counts(mri):
    _, op, _, _ = mri
    ct = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=46), (32, 32))
    # 5 convolutions of 32 channels (no biases before batch norm) + batch norm + lam
    assert MoDL(op).n_parameters == 29_059 and MoDL(ct).n_parameters == 28_482
    # 8 cascades x 29 562 (8-channel, 2-pooling U-Nets) + 8 etas + 7 518 (sensitivity U-Net)
    assert VarNet(op).n_parameters == 244_022


# -- MoDL ----------------------------------------------------------------------------------
def test_modl_data_consistency_limits(mri):
    _, op, y, x = mri
    torch.manual_seed(0)
    model = MoDL(op, n_cg=6).double()
    y = y.to(torch.complex128)
    z = torch.randn(x.shape, dtype=torch.complex128)
    with torch.no_grad():
        # a huge lam pulls the solution onto z
        torch.testing.assert_close(model.data_consistency(z, y, lam=1e10), z, rtol=0, atol=1e-8)
        # lam -> 0: n_cg CG steps on the normal equations from zero, i.e. CGLS's iterate
        cgls = tl.solvers.cgls(op, y, n_iter=6).x
        torch.testing.assert_close(model.data_consistency(z, y, lam=0.0), cgls, rtol=0, atol=1e-10)
        torch.testing.assert_close(model.data_consistency(z, y, lam=1e-9), cgls, rtol=0, atol=1e-6)
        # with the learned lam, more CG steps solve (K^H K + lam I) x = K^H g + lam z
        lam = float(model.lam)
        assert lam == pytest.approx(0.05)
        s2 = model.operator_scale ** 2
        rhs = s2 * op.adjoint(y) + lam * z
        residuals = []
        for n_cg in (6, 40):
            model.n_cg = n_cg
            sol = model.data_consistency(z, y)
            residuals.append(float((s2 * op.adjoint(op(sol)) + lam * sol - rhs).norm() / rhs.norm()))
        assert residuals[1] < 1e-8 < residuals[0], residuals


def test_modl_runs_on_a_real_operator():
    op = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=46), (32, 32))
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 8:24, 10:22] = 1.0
    torch.manual_seed(0)
    model = MoDL(op, n_iter=2, channels=8, n_cg=3)
    out = model(op(x))
    assert model.image_channels == 1 and out.shape == x.shape and out.dtype == torch.float32
    with pytest.raises(ValueError, match="lam must be a positive"):
        MoDL(op, lam=0.0)
    with pytest.raises(ValueError, match="layers must be an integer >= 2"):
        MoDL(op, layers=1)


# -- VarNet --------------------------------------------------------------------------------
def test_varnet_with_zero_cnns_is_data_consistency(mri):
    _, op, y, x = mri
    torch.manual_seed(0)
    model = make("varnet", op)
    _zero_cnns(model)
    with torch.no_grad():
        maps = model.sensitivities(y)
        assert torch.allclose((maps.abs() ** 2).sum(1), torch.ones(()), atol=1e-5)
        # a cascade with eta = 1 and zero CNN output is hard data consistency
        model.eta.fill_(1.0)
        k = torch.randn_like(y[:, 0])
        torch.testing.assert_close(model.cascade(0, k, y[:, 0], maps),
                                   torch.where(op.mask, y[:, 0], k), rtol=0, atol=1e-6)
        # starting from k^0 = y, the k-space stays y for any eta: the output is the zero-filled
        # coil images combined with the estimated maps
        model.eta.fill_(0.3)
        torch.testing.assert_close(model(y), (_ifft2c(y[:, 0]) * maps.conj()).sum(1, keepdim=True),
                                   rtol=0, atol=1e-6)


def test_varnet_fully_sampled_noiseless_returns_the_truth(mri):
    t, _, _, x = mri
    full = MultiCoilSENSE(t.coil_maps(), torch.ones(t.image_shape, dtype=torch.bool))
    y = full(x)
    torch.manual_seed(0)
    model = make("varnet", full)
    _zero_cnns(model)
    assert bool(model.acs.all())
    with torch.no_grad():
        # the ACS is all of k-space and the maps, aligned to the operator's phase, are its own
        signal = x[0, 0].abs() > 0
        maps = model.sensitivities(y)
        torch.testing.assert_close(maps[0][:, signal], full.maps.to(maps.dtype)[:, signal],
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(model(y), x, rtol=0, atol=1e-5)


def test_varnet_acs_region_and_refusals(mri):
    _, op, _, _ = mri
    box = acs_region(op.mask)
    assert bool((box <= op.mask).all()) and bool(box[:, 12].all())
    assert box.sum(0).nonzero().flatten().tolist() == [10, 11, 12]
    ct = tl.ct.RayTransform(tl.ct.ParallelBeam2D(n_angles=8, n_detectors=46), (32, 32))
    with pytest.raises(ValueError, match=r"multi-coil Cartesian MRI operator .*RayTransform lacks: "
                                         r"complex images.*`mask`.*`n_coils`"):
        VarNet(ct)
    single = SingleCoilCartesian(op.mask)
    with pytest.raises(ValueError, match=r"SingleCoilCartesian lacks: `n_coils`"):
        VarNet(single)
    with pytest.raises(TypeError, match="needs a LinearOperator"):
        VarNet("mri")
    no_centre = op.mask.clone()
    no_centre[:, 12] = False
    with pytest.raises(ValueError, match="does not sample the k-space centre"):
        VarNet(MultiCoilSENSE(op.maps, no_centre))


def test_varnet_rebinds_to_another_mask(mri):
    t, op, _, _ = mri
    torch.manual_seed(0)
    model = make("varnet", op).eval()
    other = tl.task("mri").tiny().replace(acceleration=8.0, center_fraction=0.04).operator()
    moved = model.with_operator(other)
    assert torch.equal(moved.mask, other.mask) and not torch.equal(moved.mask, model.mask)
    y8, _ = tl.data.SimulatedDataset("ellipses", "test", t.replace(acceleration=8.0,
                                                                   center_fraction=0.04),
                                     size=1).batch([0])
    assert moved(y8).shape == (1, 1, 24, 24)


# -- registration and training ---------------------------------------------------------------
def test_architectures_and_methods_registered(mri):
    _, op, _, _ = mri
    assert {"modl", "varnet", "fbpconvnet", "lgd", "lpd"} <= set(architectures())
    for name in ("modl", "varnet"):
        assert name in tl.methods("mri") and name not in tl.methods("ct")
    assert isinstance(build_model("modl", op, n_iter=1), MoDL)
    with pytest.raises(ValueError, match="bad parameters for model 'varnet'"):
        build_model("varnet", op, widht=3)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("varnet", VarNet)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("lpd", VarNet)


TINY = {"modl": {"n_iter": 2, "channels": 8, "n_cg": 3},
        "varnet": {"cascades": 2, "channels": 4, "sens_channels": 2}}


@pytest.mark.parametrize("name", NAMES)
def test_tiny_training_on_mri_writes_weights_that_reload(name, tmp_path):
    config = {"model": {"name": name, "params": TINY[name]},
              "data": {"task": "mri", "simulation": {"image_size": 24, "n_coils": 4},
                       "train_size": 8, "validation_size": 2},
              "train": {"steps": 4, "batch_size": 4, "lr": 3e-3, "val_every": 2,
                        "checkpoint_every": 2, "log_every": 1, "seed": 1, "tensorboard": False}}
    trainer = trainer_from_config(config, out_dir=tmp_path, progress=False)
    summary = trainer.fit()
    assert summary["steps"] == 4 and summary["best"]["psnr"] > 5
    task = tl.task("mri").tiny()
    model = tl.load(tmp_path / "final.safetensors", op=task.operator())
    assert type(model).__name__ == type(trainer.model).__name__
    assert model.task == task and model.card["task"] == task.spec()
    assert model.card["model"]["name"] == name
    y, x = tl.data.SimulatedDataset("ellipses", "test", task, size=2).batch([0, 1])
    with torch.no_grad():
        out = model(y)
        expected = trainer.model.eval()(y)
    assert out.shape == x.shape and out.dtype == torch.complex64
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_mri_training_refuses_varnet_on_ct(tmp_path):
    config = {"model": {"name": "varnet", "params": TINY["varnet"]},
              "data": {"simulation": {"image_size": 24, "n_angles": 6, "n_detectors": 35,
                                      "fine_size": 48}, "train_size": 4, "validation_size": 1},
              "train": {"steps": 1, "batch_size": 4, "tensorboard": False}}
    with pytest.raises(ValueError, match=r"VarNet needs a multi-coil Cartesian MRI operator.*"
                                         r"data\.task 'ct'"):
        trainer_from_config(config, out_dir=tmp_path, progress=False)


def test_complex_losses():
    from tomolearn.train.trainer import _complex_loss

    x = torch.zeros(1, 1, 2, 2, dtype=torch.complex64)
    out = torch.full_like(x, 3 + 4j)
    assert float(_complex_loss(out, x, "mse")) == 25.0
    assert float(_complex_loss(out, x, "l1")) == 5.0


SHIPPED_MRI = [f"{arch}-brain-{r}x" for arch in ("lgd", "lpd", "modl", "varnet") for r in (4, 8)
               if (arch, r) != ("lpd", 8)]  # LPD ships at 4x only (docs/mri.md)


@pytest.mark.parametrize("name", SHIPPED_MRI)
def test_shipped_configurations_validate_and_build(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    arch = name.split("-")[0]
    assert config["data"]["task"] == "mri" and config["model"]["name"] == arch
    t = tl.task({**config["data"]["simulation"], "task": "mri"})
    assert t.acceleration == float(name[-2])
    assert t.center_fraction == (0.08 if t.acceleration == 4 else 0.04)
    assert config["data"]["family"] in tl.data.FAMILIES
    model = build_model(arch, t.operator(), **config["model"]["params"])
    assert model.image_shape == t.image_shape


def test_each_task_gets_the_weights_trained_closest_to_it():
    from tomolearn.studies import default_methods
    from tomolearn.studies.demo import demo_methods
    from tomolearn.weights import WeightsError, available, shipped_weights_for

    assert set(SHIPPED_MRI) <= set(available())
    mri4 = tl.task("mri")
    mri8 = mri4.updated({"acceleration": 8.0, "center_fraction": 0.04})
    for arch in ("lgd", "modl", "varnet"):
        assert shipped_weights_for(arch, mri4) == f"{arch}-brain-4x"
        assert shipped_weights_for(arch, mri8) == f"{arch}-brain-8x"
        # another mask at 8x is still closer to the 8x weights than to the 4x ones
        assert shipped_weights_for(arch, mri8.updated({"mask": "random"})) == f"{arch}-brain-8x"
    assert shipped_weights_for("lpd", mri4) == shipped_weights_for("lpd", mri8) == "lpd-brain-4x"
    # a CT task never gets MRI weights, even one that shares a field (the image size) with them
    ct160 = tl.task("ct").updated({"image_size": 160})
    assert shipped_weights_for("lgd", ct160) == shipped_weights_for("lgd", tl.task("ct")) \
        == "lgd-ellipses"
    with pytest.raises(WeightsError, match="none of its installed weights.*'mri'"):
        shipped_weights_for("fbpconvnet", mri4)
    with pytest.raises(WeightsError, match="'pet'"):
        shipped_weights_for("lpd", tl.task("pet"))
    assert {"lgd", "lpd", "modl", "varnet"} <= set(default_methods("mri"))
    assert "fbpconvnet" not in default_methods("mri")
    # the demo keeps its three minutes: the task names the methods it shows
    assert demo_methods("mri") == ["zero-filled", "grappa", "sense", "cs-tv", "cs-wavelet",
                                   "varnet", "modl"]
    assert demo_methods("ct") == default_methods("ct")


def test_shipped_varnet_beats_sense_on_held_out_brains():
    from tomolearn.registry import build_method

    model = tl.load("varnet-brain-4x")
    card = model.card
    assert card["task"]["acceleration"] == 4.0 and card["data"]["family"] == "brain"
    assert card["training"]["steps_done"] > 0 and card["validation"]["psnr"] > 30.0
    t = tl.task("mri")
    ds = tl.data.SimulatedDataset("brain", "test", t, size=2)
    y, x = ds.batch([0, 1])
    op = ds.operator()
    varnet = build_method("varnet", t, op=op)(y)
    assert varnet.dtype == torch.complex64 and varnet.shape == x.shape  # complex kept complex
    sense = build_method("sense", t, op=op)(y)
    gain = tl.metrics.psnr(varnet, x) - tl.metrics.psnr(sense, x)
    assert float(gain.min()) > 4.0
    # bound to the 8x operator (another mask, same image and coil shapes), and refused on
    # another image size
    t8 = t.updated({"acceleration": 8.0, "center_fraction": 0.04})
    assert tl.load("varnet-brain-4x", op=t8.operator())(t8.operator()(x)).shape == x.shape
    with pytest.raises(ValueError, match="image shape|domain_shape"):
        tl.load("varnet-brain-4x", op=t.tiny().operator())


def test_varnet_binds_any_number_of_coils_lpd_does_not(mri):
    t, op, y, x = mri
    fewer = t.replace(n_coils=t.n_coils // 2)
    y2, x2 = tl.data.SimulatedDataset("ellipses", "test", fewer, size=1).batch([0])
    varnet = make("varnet", op).eval()
    moved = varnet.with_operator(fewer.operator())
    with torch.no_grad():
        assert moved(y2).shape == x2.shape
    with pytest.raises(ValueError, match="expects measurements of shape"):
        varnet(y2)  # the original binding still wants its own coils
    lpd = build_model("lpd", op, n_iter=1, channels=4)
    with pytest.raises(ValueError, match="the last two axes may differ"):
        lpd.with_operator(fewer.operator())


def test_shipped_modl_beats_sense_on_held_out_brains():
    from tomolearn.registry import build_method

    model = tl.load("modl-brain-4x")
    assert model.card["task"]["acceleration"] == 4.0 and model.card["validation"]["psnr"] > 30.0
    t = tl.task("mri")
    ds = tl.data.SimulatedDataset("brain", "test", t, size=2)
    y, x = ds.batch([0, 1])
    op = ds.operator()
    modl = build_method("modl", t, op=op)(y)
    assert modl.dtype == torch.complex64 and modl.shape == x.shape
    sense = build_method("sense", t, op=op)(y)
    assert float((tl.metrics.psnr(modl, x) - tl.metrics.psnr(sense, x)).min()) > 4.0


def test_evaluate_model_names_the_weights_the_task_would_use(capsys):
    from test_cli import main_in_process

    status, _, err = main_in_process(["evaluate", "--task", "mri", "--model", "lgd-brain-8x",
                                      "--n", "1"], capsys)
    assert status == 2 and "uses lgd-brain-4x for this task" in err
    status, _, err = main_in_process(["evaluate", "--task", "pet", "--methods", "lpd",
                                      "--n", "1"], capsys)
    assert status == 2 and "unknown method 'lpd'" in err
