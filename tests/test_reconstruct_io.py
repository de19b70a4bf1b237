"""``tomolearn reconstruct`` and ``data generate`` file handling: NIfTI and TIFF input (and NIfTI
output), the user's own weights, the --kind auto guess, --json, and one-line errors for wrong
suffixes and damaged NumPy and HDF5 files.  In process, on small grids (start-up would dominate)."""

import json

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn import phantoms

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cli(capsys, *args):
    """``tomolearn.cli.main(args)`` here: (status, stdout, stderr)."""
    from tomolearn.cli import main

    try:
        status = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, *messages, verb="reconstruct"):
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"tomolearn {verb}: error: "), err
    for message in messages:
        assert message in err, err


def phantom(n=64):
    return phantoms.shepp_logan(n).numpy().astype(np.float64)


def reconstruct(capsys, tmp_path, name, *extra, size=32):
    status, out, err = cli(capsys, "reconstruct", "--input", tmp_path / name, "--method", "fbp",
                           "--image-size", size, "--out", tmp_path / f"{name}.out.npy",
                           "--overwrite", *extra)
    assert status == 0, err
    return np.load(tmp_path / f"{name}.out.npy"), out, err


# -- NIfTI ----------------------------------------------------------------------------------------
def test_nifti_volume_slice_is_reconstructed_and_written_back_in_its_space(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    from tomolearn.data.io import read_nifti_volume

    x = phantom()
    vol = np.stack([x, 2 * x, 3 * x], axis=2).astype(np.float32)  # (I, J, K), K slices
    affine = np.array([[-0.8, 0, 0, 10], [0, 0.8, 0, -20], [0, 0, 2.5, 30], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(vol, affine), str(tmp_path / "ct.nii.gz"))
    src = read_nifti_volume(tmp_path / "ct.nii.gz")
    np.save(tmp_path / "slice.npy", src.image[1].numpy())  # the same slice as a .npy image

    rec, out, err = reconstruct(capsys, tmp_path, "ct.nii.gz", "--index", "1", size=64)
    assert "slice 1 of 3" in out and "ct.nii.gz.out.nii.gz" in out
    assert "ct.nii.gz: NIfTI image: read as an image" in err
    same, _, _ = reconstruct(capsys, tmp_path, "slice.npy", size=64)
    np.testing.assert_array_equal(rec, same)
    back = read_nifti_volume(tmp_path / "ct.nii.gz.out.nii.gz")
    assert back.image.shape == (1, 64, 64)
    np.testing.assert_array_equal(back.image[0].numpy(), rec)
    assert back.spacing == pytest.approx(src.spacing)
    # output pixel (0, h, w) lies where input voxel (1, h, w) does
    np.testing.assert_allclose(back.affine, src.affine @ np.array(
        [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), atol=1e-5)

    reconstruct(capsys, tmp_path, "ct.nii.gz", "--index", "2", size=32)  # a coarser grid
    coarse = read_nifti_volume(tmp_path / "ct.nii.gz.out.nii.gz")
    assert coarse.spacing == pytest.approx((2.5, 1.6, 1.6))
    np.testing.assert_allclose(coarse.affine @ [0, 0, 0, 1], src.affine @ [2, 0.5, 0.5, 1],
                               atol=1e-5)

    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "ct.nii.gz", "--index", 3,
                         "--method", "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "--index 3 is out of range: ", "holds 3 slice(s)")
    assert not (tmp_path / "r.npy").exists()


def test_a_two_dimensional_nifti_and_its_type_named_in_errors(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")

    nib.save(nib.Nifti1Image(phantom(32).astype(np.float32), np.eye(4)), str(tmp_path / "s.nii"))
    rec, out, _ = reconstruct(capsys, tmp_path, "s.nii")
    assert rec.shape == (32, 32) and (tmp_path / "s.nii.out.nii.gz").exists()
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "s.nii", "--index", 1,
                         "--method", "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "--index 1 is out of range")
    nib.save(nib.Nifti1Image(phantom(32).astype(np.float32), np.eye(4)),
             str(tmp_path / "s.nii.gz"))
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "s.nii.gz", "--kind",
                         "sinogram", "--method", "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "unknown sinogram file type '.nii.gz'")
    (tmp_path / "a.tar.gz").write_bytes(b"\0" * 300)
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "a.tar.gz", "--method",
                         "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "unknown input file type '.tar.gz'")


def test_nifti_without_nibabel_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import builtins

    (tmp_path / "x.nii.gz").write_bytes(b"\0" * 400)
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "nibabel" or name.startswith("nibabel."):
            raise ImportError("No module named 'nibabel'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "x.nii.gz", "--method",
                         "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "needs nibabel", "pip install", "tomolearn[nifti]")
    assert not (tmp_path / "r.npy").exists()


# -- TIFF -----------------------------------------------------------------------------------------
def test_float_tiff_images_and_stacks_read_as_the_same_numpy_image(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    from PIL import Image

    x = phantom(48) * 1.7 + 0.1
    np.save(tmp_path / "x.npy", x)
    want, _, _ = reconstruct(capsys, tmp_path, "x.npy")
    tifffile.imwrite(tmp_path / "x64.tif", x)                      # float64: Pillow cannot
    tifffile.imwrite(tmp_path / "x32.tiff", x.astype(np.float32))
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([0 * x, x]).astype(np.float32),
                     photometric="minisblack")
    Image.fromarray(x.astype(np.float32), mode="F").save(tmp_path / "lzw.tif",
                                                         compression="tiff_lzw")
    got, out, err = reconstruct(capsys, tmp_path, "x64.tif")
    np.testing.assert_allclose(got, want, atol=1e-5)  # read as float32
    assert "x64.tif: TIFF image: read as an image" in err and "TIFF" in out
    for name, extra in (("x32.tiff", ()), ("stack.tif", ("--index", "1")), ("lzw.tif", ())):
        got, out, _ = reconstruct(capsys, tmp_path, name, *extra)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert ("slice 1 of 2" in out) == (name == "stack.tif")
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "stack.tif", "--index", 2,
                         "--method", "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "--index 2 is out of range", "2 slice(s)")
    (tmp_path / "bad.tif").write_bytes(b"II*\0" + b"\1" * 60)
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "bad.tif", "--method",
                         "fbp", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "bad.tif: not a readable TIFF file")


# -- --weights ------------------------------------------------------------------------------------
@pytest.fixture
def own_weights(tmp_path):
    """Small FBPConvNet weights on a 32 x 32, 10-angle CT task, saved as tomolearn train does."""
    from tomolearn.modalities.ct.reconstruct_input import default_detectors
    from tomolearn.weights import build_model, save_weights

    task = tl.task("ct").replace(image_size=32, n_angles=10, n_detectors=default_detectors(32))
    torch.manual_seed(0)
    model = build_model("fbpconvnet", task.operator(), channels=4, depth=2)
    card = {"model": {"name": "fbpconvnet", "params": {"channels": 4, "depth": 2}},
            "task": task.spec(), "geometry": model.geometry_spec}
    return save_weights(tmp_path / "mine.safetensors", model.eval().state_dict(), card), task


def test_own_weights_reconstruct_and_are_checked(tmp_path, capsys, own_weights):
    path, task = own_weights
    y = torch.rand(10, task.n_detectors, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "sino.npy", y.numpy())
    status, out, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                           path, "--image-size", 32, "--out", tmp_path / "rec.npy", "--json",
                           tmp_path / "rec.json")
    assert status == 0, err
    assert out.startswith("fbpconvnet (weights mine.safetensors): 32x32 image from 10 angles")
    with torch.no_grad():
        expected = tl.load(path, op=task.operator())(y[None, None])[0, 0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "rec.npy"), expected, atol=1e-6)
    doc = json.loads((tmp_path / "rec.json").read_text())
    assert doc["method"] == "fbpconvnet" and doc["weights"] == str(path)
    # --method and --weights together: they agree, or --method is refused
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                         path, "--method", "fbpconvnet", "--image-size", 32, "--out",
                         tmp_path / "rec.npy", "--overwrite")
    assert status == 0, err
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                         path, "--method", "lpd", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "--method lpd and --weights", "disagree", "'fbpconvnet'")
    # a geometry the weights were not trained for (the card is checked against the operator)
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                         path, "--image-size", 64, "--out", tmp_path / "r.npy")
    one_line_error(status, err, f"--weights {path} cannot reconstruct this data")
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy",
                         "--out", tmp_path / "r.npy")
    one_line_error(status, err, "--method NAME", "--weights FILE.safetensors")
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                         tmp_path / "mine.pt", "--out", tmp_path / "r.npy")
    one_line_error(status, err, "expected a .safetensors file")
    path.with_suffix(".json").unlink()
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--weights",
                         path, "--out", tmp_path / "r.npy")
    one_line_error(status, err, "mine.json: no such file")
    assert not (tmp_path / "r.npy").exists()


# -- --kind auto ----------------------------------------------------------------------------------
def test_kind_auto_says_what_it_read_and_why(tmp_path, capsys):
    np.save(tmp_path / "sino.npy", np.ones((30, 183), np.float32))
    np.save(tmp_path / "one.npy", np.ones((1, 30, 183), np.float32))
    np.save(tmp_path / "img.npy", phantom(32))
    _, _, err = reconstruct(capsys, tmp_path, "sino.npy", size=128)
    assert err.strip() == ("tomolearn reconstruct: --kind auto: sino.npy: (30, 183) array, not "
                           "square: read as a sinogram")
    _, _, err = reconstruct(capsys, tmp_path, "one.npy", size=128)
    assert "(1, 30, 183) array, (1, A, D): read as a sinogram" in err
    _, _, err = reconstruct(capsys, tmp_path, "img.npy")
    assert "img.npy: (32, 32) array, square: read as an image" in err
    _, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "img.npy", "--kind", "image",
                    "--method", "fbp", "--image-size", 32, "--out", tmp_path / "e.npy")
    assert "--kind auto" not in err                          # no guess when told
    for shape in [(5,), (2, 30, 183), (1, 1, 30, 183, 1), ()]:
        np.save(tmp_path / "odd.npy", np.ones(shape, np.float32))
        status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "odd.npy", "--method",
                             "fbp", "--out", tmp_path / "r.npy")
        one_line_error(status, err, f"got shape {shape}", "expected a 2-D array (A, D) or "
                       "(1, A, D)", "neither a sinogram", "nor an image")
    assert not (tmp_path / "r.npy").exists()


# -- --json ---------------------------------------------------------------------------------------
def test_json_summary_and_it_is_checked_before_work(tmp_path, capsys):
    x = phantom(32).astype(np.float32)
    op = tl.task("ct").replace(image_size=32, n_angles=12, n_detectors=47).operator()
    y = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.savez(tmp_path / "s.npz", sinogram=y, ground_truth=x)
    status, out, err = cli(capsys, "reconstruct", "--input", tmp_path / "s.npz", "--method",
                           "fbp", "--image-size", 32, "--out", tmp_path / "r.npy", "--json",
                           tmp_path / "r.json")
    assert status == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["method"] == "fbp" and doc["input"] == str(tmp_path / "s.npz")
    assert doc["kind"] == "sinogram" and doc["format"] == "npz"
    assert doc["image_shape"] == [32, 32] and doc["data_shape"] == [12, 47]
    assert doc["seconds"] >= 0 and doc["psnr"] > 15 and 0 < doc["ssim"] <= 1
    assert doc["outputs"] == [str(tmp_path / "r.npy"), str(tmp_path / "r.png")]
    assert f"{doc['psnr']:.2f} dB" in out
    np.save(tmp_path / "sino.npy", y)                         # no ground truth: no scores
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--method",
                         "fbp", "--image-size", 32, "--out", tmp_path / "q.npy", "--json",
                         tmp_path / "q.json")
    assert status == 0, err
    doc = json.loads((tmp_path / "q.json").read_text())
    assert "psnr" not in doc and "ssim" not in doc and doc["kind"] == "sinogram"
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--method",
                         "fbp", "--out", tmp_path / "new.npy", "--json", tmp_path / "q.json")
    one_line_error(status, err, "--json", "file exists (pass --overwrite")
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--method",
                         "fbp", "--out", tmp_path / "new.npy", "--json", tmp_path / "no" / "q.json")
    one_line_error(status, err, "--json", "--parents")
    status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / "sino.npy", "--method",
                         "fbp", "--out", tmp_path / "new.npy", "--json", tmp_path / "q.txt")
    one_line_error(status, err, "--json", "expected a .json file name")
    assert not (tmp_path / "new.npy").exists()


# -- data generate --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["x.npy", "x.h5.tmp", "x", "x.npz"])
def test_data_generate_refuses_an_output_that_is_not_hdf5(tmp_path, capsys, name):
    status, _, err = cli(capsys, "data", "generate", "ellipses", "--split", "test", "--n", 1,
                         "--out", tmp_path / name, "--quiet")
    one_line_error(status, err, f"--out {tmp_path / name}", ".h5 or .hdf5", verb="data")
    assert list(tmp_path.iterdir()) == []


def test_data_generate_writes_hdf5_by_either_suffix(tmp_path, capsys):
    status, _, err = cli(capsys, "data", "generate", "ellipses", "--split", "test", "--n", 1,
                         "--out", tmp_path / "t.HDF5", "--quiet")
    assert status == 0, err
    assert (tmp_path / "t.HDF5").exists()


# -- damaged files --------------------------------------------------------------------------------
def test_a_damaged_npy_is_not_answered_with_pickle_advice(tmp_path, capsys):
    from tomolearn.data.io import read_array

    good = tmp_path / "good.npy"
    np.save(good, np.ones((30, 183), np.float32))
    raw = good.read_bytes()
    files = {"garbage.npy": b"this is not numpy data" * 10,          # numpy: "pickled data"
             "objects.npy": raw.replace(b"'<f4'", b"'|O4'"),          # numpy: "Object arrays"
             "cut.npy": raw[:300], "header.npy": raw[:40], "empty.npy": b""}
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    for name in [*files, "pickled.npy"]:
        for kind in ("auto", "sinogram", "image"):
            status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / name, "--kind",
                                 kind, "--method", "fbp", "--out", tmp_path / "r.npy")
            one_line_error(status, err, f"{name}: not a readable NumPy array file")
            assert "allow_pickle" not in err and "pickle.load" not in err
        with pytest.raises(ValueError, match="not a readable NumPy array file") as e:
            read_array(tmp_path / name)
        assert "allow_pickle" not in str(e.value)
    (tmp_path / "garbage.npz").write_bytes(b"this is not a zip" * 10)
    np.savez(tmp_path / "objects.npz", sinogram=np.array([{}], dtype=object))
    for name in ("garbage.npz", "objects.npz"):
        status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / name, "--method", "fbp",
                             "--out", tmp_path / "r.npy")
        one_line_error(status, err, "not a readable NumPy array file")
        assert "allow_pickle" not in err


def test_a_damaged_or_truncated_hdf5_is_one_line(tmp_path, capsys):
    status, _, err = cli(capsys, "data", "generate", "ellipses", "--split", "test", "--n", 2,
                         "--out", tmp_path / "t.h5", "--quiet")
    assert status == 0, err
    raw = (tmp_path / "t.h5").read_bytes()
    assert raw.count(b"SNOD") == 1
    damaged = {"cut.h5": raw[:len(raw) // 2],                      # truncated
               "table.h5": raw.replace(b"SNOD", b"XXXX"),          # h5py: RuntimeError
               "chunk.h5": raw[:-3000] + bytes(3000)}              # compressed data zeroed
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        status, _, err = cli(capsys, "reconstruct", "--input", tmp_path / name, "--index", 1,
                             "--method", "fbp", "--out", tmp_path / "r.npy")
        one_line_error(status, err, f"{name}: ")
        assert "HDF5" in err
    assert not (tmp_path / "r.npy").exists()
