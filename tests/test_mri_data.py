"""MRI data: the "brain" image family (nilearn's MNI152 tissue maps), fastMRI-style HDF5 files
and MR DICOM magnitude images."""

import importlib.util
import itertools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn.data import FAMILIES, SimulatedDataset
from tomolearn.data import brain as brain_module
from tomolearn.data.brain import brain_phantom, tissue_intensities
from tomolearn.modalities.mri import (ismrmrd_header, read_fastmri, read_ismrmrd_header,
                                      read_mr_dicom, write_fastmri, write_fastmri_sample)

#: The "brain" family needs nilearn (an optional dependency, in the test extra).
needs_nilearn = pytest.mark.skipif(importlib.util.find_spec("nilearn") is None,
                                   reason="nilearn is not installed")


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# the "brain" family
# --------------------------------------------------------------------------------------------

@needs_nilearn
def test_brain_family_is_registered_and_templates_ship_with_nilearn():
    import nilearn

    assert "brain" in FAMILIES and FAMILIES["brain"].__doc__
    data = Path(nilearn.__file__).parent / "datasets" / "data"
    for kind in ("gm", "wm", "t1"):
        assert (data / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz").is_file()


@needs_nilearn
@pytest.mark.parametrize("size", [64, 160])
def test_brain_shape_range_and_determinism(size):
    x = FAMILIES["brain"](_rng(0), size)
    assert x.shape == (size, size) and x.dtype == torch.float64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(FAMILIES["brain"](_rng(0), size), x)
    assert not torch.equal(FAMILIES["brain"](_rng(1), size), x)
    # the background (outside the brain) is zero, the brain covers a fair part of the image
    assert float(x[0, 0]) == 0.0 and 0.2 < float((x > 0).double().mean()) < 0.8


@needs_nilearn
def test_brain_draws_the_same_whatever_is_forced():
    states = []
    for contrast, lesions in ((None, None), ("t2", True), ("pd", False)):
        rng = _rng(7)
        brain_phantom(rng, 32, contrast=contrast, lesions=lesions)
        states.append(rng.bit_generator.state)
    assert states[0] == states[1] == states[2]


@needs_nilearn
def test_image_is_the_weighted_sum_of_the_tissue_maps():
    img, info = brain_phantom(_rng(3), 96)
    mix = sum(info["intensities"][t] * info["maps"][t] for t in ("gm", "wm", "csf", "lesion"))
    torch.testing.assert_close(img, mix / info["max"], rtol=0, atol=1e-12)
    total = sum(info["maps"].values())
    assert float(total.max()) <= 1.0 + 1e-6


@pytest.mark.parametrize("contrast, order", [("t1", ("wm", "gm", "csf")),
                                             ("t2", ("csf", "gm", "wm")),
                                             ("pd", ("csf", "gm", "wm"))])
@needs_nilearn
def test_contrasts_order_the_tissues(contrast, order):
    nominal = tissue_intensities(contrast)
    assert nominal[order[0]] > nominal[order[1]] > nominal[order[2]]
    # every extreme of the intensity jitter keeps the order
    for signs in itertools.product((-1, 1), repeat=3):
        j = tissue_intensities(contrast, list(signs) + [0])
        assert j[order[0]] > j[order[1]] > j[order[2]], (signs, j)
    for seed in range(3):
        img, info = brain_phantom(_rng(seed), 160, contrast=contrast, lesions=False)
        means = {t: float(img[info["maps"][t] > 0.8].mean()) for t in order}
        assert means[order[0]] > means[order[1]] > means[order[2]], (seed, means)


@needs_nilearn
def test_lesions_appear_when_forced():
    with_lesions, info = brain_phantom(_rng(11), 160, contrast="t2", lesions=True)
    without, info0 = brain_phantom(_rng(11), 160, contrast="t2", lesions=False)
    assert info["n_lesions"] >= 1 and info0["n_lesions"] == 0
    assert float(info0["maps"]["lesion"].abs().max()) == 0.0
    lesion = info["maps"]["lesion"]
    assert float(lesion.max()) > 0.5
    changed = (with_lesions - without * info0["max"] / info["max"]).abs() > 1e-9
    # only pixels touched by a lesion change, and lesions are bright on T2-like images
    assert bool((lesion[changed] > 0).all())
    core = lesion > 0.5
    assert float(with_lesions[core].mean()) > float(without[core].mean())
    t1, _ = brain_phantom(_rng(11), 160, contrast="t1", lesions=True)
    t1_clean, _ = brain_phantom(_rng(11), 160, contrast="t1", lesions=False)
    assert float(t1[core].mean()) < float(t1_clean[core].mean())  # dark on T1-like images


@needs_nilearn
def test_lesion_probability_is_about_one_half():
    n = sum(brain_phantom(_rng(s), 16)[1]["n_lesions"] > 0 for s in range(40))
    assert 10 <= n <= 30


@needs_nilearn
def test_brain_dataset_with_the_mri_task():
    ds = SimulatedDataset("brain", "test", tl.task("mri").tiny())
    y, x = ds[0]
    assert y.shape == (1, 4, 24, 24) and y.is_complex()
    assert x.shape == (1, 24, 24) and x.is_complex()
    assert 0.99 < float(x.abs().max()) <= 1.0 + 1e-6
    y2, x2 = ds[0]
    assert torch.equal(y, y2) and torch.equal(x, x2)


def test_missing_nilearn_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)
    monkeypatch.setitem(sys.modules, "nilearn.datasets", None)
    with pytest.raises(ImportError, match="pip install nilearn"):
        brain_module.tissue_maps.__wrapped__()


def test_import_tomolearn_does_not_import_nilearn():
    code = "import sys, tomolearn; assert 'nilearn' not in sys.modules, 'nilearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# --------------------------------------------------------------------------------------------
# fastMRI-style HDF5 files
# --------------------------------------------------------------------------------------------

def _fastmri_metadata(path):
    """fastMRI's ``SliceDataset._retrieve_metadata`` (fastmri/data/mri_data.py), verbatim logic."""
    ns = {"ns": "http://www.ismrm.org/ISMRMRD"}

    def et_query(root, qlist):
        return root.find("./" + "/".join(f"ns:{q}" for q in qlist), ns).text

    with h5py.File(path, "r") as hf:
        root = ET.fromstring(hf["ismrmrd_header"][()])
        enc = ["encoding", "encodedSpace", "matrixSize"]
        enc_size = tuple(int(et_query(root, enc + [a])) for a in "xyz")
        rec = ["encoding", "reconSpace", "matrixSize"]
        recon_size = tuple(int(et_query(root, rec + [a])) for a in "xyz")
        lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
        center = int(et_query(root, lims + ["center"]))
        maximum = int(et_query(root, lims + ["maximum"])) + 1
        left = enc_size[1] // 2 - center
        return {"padding_left": left, "padding_right": left + maximum, "encoding_size": enc_size,
                "recon_size": recon_size, **dict(hf.attrs)}


def _kspace(shape, seed=0):
    g = np.random.default_rng(seed)
    return (g.standard_normal(shape) + 1j * g.standard_normal(shape)).astype(np.complex64)


def test_fastmri_multicoil_round_trip(tmp_path):
    k = _kspace((3, 4, 32, 24))
    target = np.random.default_rng(1).uniform(size=(3, 16, 16)).astype(np.float32)
    mask = np.zeros(24, bool)
    mask[::4] = mask[10:14] = True
    header = ismrmrd_header((32, 24, 1), (16, 16, 1), encoded_fov_mm=(220, 220, 4.5),
                            recon_fov_mm=(220.0, 220.0, 4.5), n_coils=4, field_strength_t=1.5)
    path = write_fastmri(tmp_path / "file1.h5", k, target, mask, header, acquisition="AXT2",
                         attrs={"acceleration": 4.0, "num_low_frequency": 4})
    # the layout, read as fastMRI reads it
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"kspace", "reconstruction_rss", "mask", "ismrmrd_header"}
        assert f["kspace"].dtype == np.complex64 and f["kspace"].shape == (3, 4, 32, 24)
        assert f["reconstruction_rss"].dtype == np.float32
        assert isinstance(f["ismrmrd_header"][()], bytes)
    meta = _fastmri_metadata(path)
    assert meta["encoding_size"] == (32, 24, 1) and meta["recon_size"] == (16, 16, 1)
    assert (meta["padding_left"], meta["padding_right"]) == (0, 24)
    assert meta["acquisition"] == "AXT2"
    assert meta["max"] == pytest.approx(float(target.max()))
    assert meta["norm"] == pytest.approx(float(np.linalg.norm(target.astype(np.float64))))
    assert isinstance(meta["patient_id"], str) and len(meta["patient_id"]) == 64
    # and as tomolearn reads it
    out = read_fastmri(path)
    assert out["multicoil"] and out["kspace"].dtype == torch.complex64
    np.testing.assert_array_equal(out["kspace"].numpy(), k)
    np.testing.assert_array_equal(out["reconstruction_rss"].numpy(), target)
    assert out["reconstruction_esc"] is None
    np.testing.assert_array_equal(out["mask"].numpy(), mask)
    assert out["attrs"]["acceleration"] == 4.0 and out["attrs"]["num_low_frequency"] == 4
    h = out["header"]
    assert h["encoded_matrix"] == (32, 24, 1) and h["recon_matrix"] == (16, 16, 1)
    assert h["encoded_fov_mm"] == (220.0, 220.0, 4.5) and h["n_coils"] == 4
    assert h["field_strength_t"] == 1.5 and h["trajectory"] == "cartesian"
    assert (out["padding_left"], out["padding_right"]) == (0, 24)
    assert read_fastmri(path, slices=1)["kspace"].shape == (1, 4, 32, 24)


def test_fastmri_single_coil_and_default_header(tmp_path):
    k = _kspace((2, 20, 16))
    out = read_fastmri(write_fastmri(tmp_path / "sc.h5", torch.from_numpy(k)))
    assert not out["multicoil"] and out["kspace"].shape == (2, 20, 16)
    assert out["reconstruction_rss"] is None and out["mask"] is None
    assert out["header"]["encoded_matrix"] == (20, 16, 1) and out["header"]["n_coils"] == 1
    assert "max" not in out["attrs"] and out["attrs"]["acquisition"] == "SIMULATED"


def test_fastmri_refuses_overwrite_and_writes_atomically(tmp_path):
    path = write_fastmri(tmp_path / "a.h5", _kspace((1, 2, 8, 8)))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_fastmri(path, _kspace((1, 2, 8, 8), seed=1))
    np.testing.assert_array_equal(read_fastmri(path)["kspace"].numpy(), _kspace((1, 2, 8, 8)))
    write_fastmri(path, _kspace((1, 2, 8, 8), seed=1), overwrite=True)
    np.testing.assert_array_equal(read_fastmri(path)["kspace"].numpy(),
                                  _kspace((1, 2, 8, 8), seed=1))
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]  # no temporary file left


def test_fastmri_file_without_kspace_is_refused(tmp_path):
    path = tmp_path / "nokspace.h5"
    with h5py.File(path, "w") as f:
        f["reconstruction_rss"] = np.zeros((1, 4, 4), np.float32)
        f.attrs["acquisition"] = "AXT1"
    with pytest.raises(ValueError, match=r"nokspace\.h5.*kspace.*reconstruction_rss.*acquisition"):
        read_fastmri(path)


def test_fastmri_wrong_arrays_are_refused(tmp_path):
    bad = tmp_path / "real.h5"
    with h5py.File(bad, "w") as f:
        f["kspace"] = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="complex"):
        read_fastmri(bad)
    with h5py.File(tmp_path / "dims.h5", "w") as f:
        f["kspace"] = np.zeros((4, 4), np.complex64)
    with pytest.raises(ValueError, match="slices"):
        read_fastmri(tmp_path / "dims.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        read_fastmri(tmp_path / "text.h5")
    k = _kspace((2, 3, 8, 8))
    with pytest.raises(ValueError, match="complex"):
        write_fastmri(tmp_path / "x.h5", k.real)
    with pytest.raises(ValueError, match="slices"):
        write_fastmri(tmp_path / "x.h5", k[0, 0])
    with pytest.raises(ValueError, match="reconstruction_rss"):
        write_fastmri(tmp_path / "x.h5", k, np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="mask"):
        write_fastmri(tmp_path / "x.h5", k, mask=np.ones(7, bool))
    with pytest.raises(ValueError, match="not valid XML"):
        write_fastmri(tmp_path / "x.h5", k, header=b"<ismrmrdHeader")
    with pytest.raises(ValueError, match="attrs may not set acquisition"):
        write_fastmri(tmp_path / "x.h5", k, attrs={"acquisition": "AXT2"})
    assert not (tmp_path / "x.h5").exists()


def test_ismrmrd_header_errors():
    with pytest.raises(ValueError, match="not an ismrmrdHeader"):
        read_ismrmrd_header(b"<foo/>")
    no_recon = b'<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding/></ismrmrdHeader>'
    with pytest.raises(ValueError, match="no encoding/encodedSpace/matrixSize/x"):
        read_ismrmrd_header(no_recon)
    with pytest.raises(ValueError, match="encoded_matrix"):
        ismrmrd_header((32, 0, 1))


def test_write_dataset_sample_as_fastmri(tmp_path):
    task = tl.task("mri").tiny()
    y, x = SimulatedDataset("ellipses", "test", task)[0]
    path = write_fastmri_sample(tmp_path / "sample.h5", y, x, task)
    out = read_fastmri(path)
    assert out["kspace"].shape == (1, 4, 24, 24)
    torch.testing.assert_close(out["kspace"][0], y[0].to(torch.complex64))
    # fastMRI's target: RSS of the coil images of the fully sampled k-space = |x| here
    torch.testing.assert_close(out["reconstruction_rss"][0], x[0].abs().float(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["mask"].numpy(), task.sampling_mask()[0].numpy())
    assert out["header"]["n_coils"] == 4 and out["header"]["encoded_matrix"] == (24, 24, 1)
    assert out["attrs"]["acceleration"] == task.acceleration
    assert tl.task(json.loads(out["attrs"]["tomolearn_task"])) == task
    with pytest.raises(FileExistsError):
        write_fastmri_sample(path, y, x, task)


# --------------------------------------------------------------------------------------------
# MR DICOM magnitude images
# --------------------------------------------------------------------------------------------

def _write_mr(path, raw, *, z=0.0, modality="MR", image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
              slope=None, intercept=None, series_uid="1.2.3.9"):
    """A synthetic unsigned 16-bit MONOCHROME2 MR slice."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    raw = np.asarray(raw, dtype=np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", series_uid
    ds.Modality = modality
    ds.ImageType = list(image_type)
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.9, 0.9]
    ds.ImagePositionPatient = [-100.0, -120.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 5.0
    ds.EchoTime, ds.RepetitionTime, ds.MagneticFieldStrength = 100.0, 4000.0, 3.0
    ds.SeriesDescription = "AX T2"
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = raw.astype("<u2").tobytes()
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:
        ds.save_as(path, write_like_original=False)
    return path


def test_read_mr_dicom_file(tmp_path):
    raw = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000  # up to 55000: needs 16 bits
    image, meta = read_mr_dicom(_write_mr(tmp_path / "mr.dcm", raw))
    assert image.shape == (3, 4) and image.dtype == torch.float64
    np.testing.assert_allclose(image.numpy(), raw / raw.max(), rtol=1e-6)
    assert meta["scale"] == 55000.0 and meta["modality"] == "MR"
    assert meta["echo_time_ms"] == 100.0 and meta["repetition_time_ms"] == 4000.0
    assert meta["field_strength_t"] == 3.0 and meta["pixel_spacing"] == (0.9, 0.9)
    assert meta["photometric_interpretation"] == "MONOCHROME2"
    raw_values, meta = read_mr_dicom(tmp_path / "mr.dcm", normalize=False)
    np.testing.assert_array_equal(raw_values.numpy(), raw.astype(np.float64))
    assert meta["scale"] == 1.0


def test_read_mr_dicom_series_scales_by_the_series_max(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    slices = [np.full((4, 5), v, np.uint16) for v in (100, 400, 200)]
    for name, z, raw in (("b.dcm", 10.0, slices[1]), ("a.dcm", 15.0, slices[2]),
                         ("c.dcm", 5.0, slices[0])):
        _write_mr(series / name, raw, z=z, slope=2.0, intercept=0.0)
    image, meta = read_mr_dicom(series)
    assert image.shape == (3, 4, 5)
    np.testing.assert_allclose(image[:, 0, 0].numpy(), [0.25, 1.0, 0.5])  # ordered by z
    assert meta["scale"] == 800.0 and meta["slice_spacing"] == pytest.approx(5.0)


def test_read_mr_dicom_refuses_other_images(tmp_path):
    raw = np.ones((2, 2), np.uint16)
    with pytest.raises(ValueError, match="modality is CT, not MR"):
        read_mr_dicom(_write_mr(tmp_path / "ct.dcm", raw, modality="CT"))
    with pytest.raises(ValueError, match="not a magnitude image"):
        read_mr_dicom(_write_mr(tmp_path / "phase.dcm", raw,
                                image_type=("ORIGINAL", "PRIMARY", "P", "ND")))
    with pytest.raises(ValueError, match="negative"):
        read_mr_dicom(_write_mr(tmp_path / "neg.dcm", raw, slope=1.0, intercept=-5.0))
