"""Tests for tomolearn.data.io: DICOM / NIfTI / NumPy readers, resampling, real-slice pairs."""

import math

import numpy as np
import pytest
import torch

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, JPEG2000Lossless,  # noqa: E402
                         JPEGLSLossless, MRImageStorage, UID, generate_uid)

from tomolearn.data.io import (MissingDecoderError, hu_to_mu, mu_to_hu, read_array,  # noqa: E402
                               read_dicom, read_dicom_series, read_image, read_nifti,
                               read_nifti_volume, resample, slice_to_unit_range)
from tomolearn.ct import NoiseSpec, SimulationSpec, real_measurement_pair  # noqa: E402
from tomolearn.noise import MU_AIR, MU_MAX, MU_WATER  # noqa: E402

SLOPE, INTERCEPT = 2.0, -1024.0


def write_ct(path, raw, *, z=0.0, position=None, orientation=(1, 0, 0, 0, 1, 0), instance=1,
             series_uid="1.2.3.4.5", slope=SLOPE, intercept=INTERCEPT, spacing=(0.7, 0.8),
             transfer_syntax=ExplicitVRLittleEndian, pixel_data=None, frames=1,
             modality="CT", sop_class=CTImageStorage):
    """Write a synthetic signed 16-bit CT slice; returns the path."""
    raw = np.asarray(raw)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.Rows, ds.Columns = raw.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelSpacing = list(spacing)
    ds.ImagePositionPatient = list(position) if position is not None else [-100.0, -120.0, z]
    ds.ImageOrientationPatient = list(orientation)
    ds.InstanceNumber = instance
    ds.SliceThickness = 1.25
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixel_data is not None:
        ds.PixelData = pixel_data
        if UID(transfer_syntax).is_compressed:
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
    elif pixel_data is None and raw.size:
        ds.PixelData = raw.astype("<i2").tobytes()
    try:
        ds.save_as(path, enforce_file_format=True)       # pydicom >= 3
    except TypeError:
        ds.save_as(path, write_like_original=False)      # pydicom 2.x
    return path


def raw_of_hu(hu):
    return np.round((np.asarray(hu, dtype=np.float64) - INTERCEPT) / SLOPE).astype(np.int16)


# ------------------------------------------------------------------------------------------------
# HU and attenuation
# ------------------------------------------------------------------------------------------------

def test_hu_to_mu_is_lodopab_formula():
    # lodopab_tech_ref/create_dataset.py: array *= (MU_WATER - MU_AIR) / 1000; array += MU_WATER
    assert MU_WATER == 20.0 and MU_AIR == 0.02
    assert hu_to_mu(0.0) == pytest.approx(MU_WATER)
    assert hu_to_mu(-1000.0) == pytest.approx(MU_AIR, abs=1e-12)
    assert hu_to_mu(3071.0) == pytest.approx(MU_MAX, abs=1e-9)
    assert hu_to_mu(-1024.0) == 0.0  # clipped, not negative
    hu = torch.tensor([-3000.0, -1000.0, 0.0, 500.0], dtype=torch.float64)
    mu = hu_to_mu(hu)
    assert isinstance(mu, torch.Tensor) and float(mu.min()) == 0.0
    assert torch.allclose(mu_to_hu(mu[1:]), hu[1:])
    assert np.allclose(hu_to_mu(np.array([0.0, 1000.0])), [20.0, 39.98])


# ------------------------------------------------------------------------------------------------
# DICOM
# ------------------------------------------------------------------------------------------------

def test_single_file_rescale_and_units(tmp_path):
    raw = np.zeros((6, 7), dtype=np.int16)
    raw[0, 0] = 512    # 2 * 512 - 1024 = 0 HU (water)
    raw[0, 1] = 12     # -1000 HU (air)
    raw[0, 2] = 1000   # 976 HU
    raw[0, 3] = 0      # -1024 HU -> negative mu, clipped
    raw[5, 6] = -100   # signed storage: -1224 HU
    f = write_ct(tmp_path / "slice.dcm", raw)

    mu = read_dicom(f)
    assert mu.shape == (1, 6, 7) and mu.dtype == torch.float32
    assert mu[0, 0, 0].item() == pytest.approx(MU_WATER, rel=1e-6)
    assert mu[0, 0, 1].item() == pytest.approx(MU_AIR, abs=1e-6)
    assert mu[0, 0, 2].item() == pytest.approx(976 * (MU_WATER - MU_AIR) / 1000 + MU_WATER,
                                               rel=1e-6)
    assert mu[0, 0, 3].item() == 0.0 and mu[0, 5, 6].item() == 0.0
    assert float(mu.min()) >= 0.0

    hu = read_dicom(f, units="hu")
    expected = raw.astype(np.float64) * SLOPE + INTERCEPT
    np.testing.assert_allclose(hu[0].numpy(), expected)
    assert hu[0, 5, 6].item() == -1224.0

    vol = read_dicom_series(f)
    assert vol.pixel_spacing == (0.7, 0.8)
    assert vol.spacing == (1.25, 0.7, 0.8)  # SliceThickness for a single slice
    assert vol.modality == "CT" and vol.series_uid == "1.2.3.4.5"
    assert vol.files == [f] and len(vol.datasets) == 1
    assert vol.datasets[0].SOPClassUID == CTImageStorage
    assert vol.slice_positions == (0.0,)
    assert vol.orientation == (1, 0, 0, 0, 1, 0)

    with pytest.raises(ValueError, match="units"):
        read_dicom(f, units="kelvin")


def test_pixel_orientation_kept(tmp_path):
    raw = np.zeros((4, 5), dtype=np.int16)
    raw[0, 4] = 1000  # top right as stored
    f = write_ct(tmp_path / "a.dcm", raw)
    hu = read_dicom(f, units="hu")[0]
    assert torch.argmax(hu).item() == 4  # row 0, column 4


def test_series_sorted_by_position_along_normal(tmp_path):
    # Coronal slices: row direction +x, column direction -z, normal = row x col = +y.
    orientation = (1, 0, 0, 0, 0, -1)
    normal = np.cross(orientation[:3], orientation[3:])
    assert np.allclose(normal, [0, 1, 0])
    n = 5
    rng = np.random.default_rng(0)
    names = ["e.dcm", "c.dcm", "a.dcm", "d.dcm", "b.dcm"]   # file k holds slice order[k]
    order = [3, 0, 4, 1, 2]
    instances = [2, 3, 1, 5, 4]                              # disagree with the positions
    for name, k, inst in zip(names, order, instances):
        # In-plane shifts (along x and z) vary so that sorting by anything but the
        # projection on the normal (y) fails.
        pos = (float(rng.uniform(-50, 50)), -30.0 + 2.5 * k, float(rng.uniform(-50, 50)))
        raw = np.full((3, 4), 100 * (k + 1), dtype=np.int16)
        write_ct(tmp_path / name, raw, position=pos, orientation=orientation, instance=inst)
    vol = read_dicom_series(tmp_path, units="hu")
    assert vol.image.shape == (n, 3, 4)
    got = vol.image[:, 0, 0].numpy()
    np.testing.assert_allclose(got, [100 * (k + 1) * SLOPE + INTERCEPT for k in range(n)])
    assert vol.slice_positions == pytest.approx([-30.0 + 2.5 * k for k in range(n)])
    assert vol.slice_spacing == pytest.approx(2.5)
    assert [p.name for p in vol.files] == ["c.dcm", "d.dcm", "b.dcm", "e.dcm", "a.dcm"]
    assert [int(ds.InstanceNumber) for ds in vol.datasets] == [3, 5, 4, 2, 1]
    assert read_dicom(tmp_path).shape == (n, 3, 4)


def test_series_falls_back_to_instance_number(tmp_path):
    for name, inst in [("x.dcm", 3), ("y.dcm", 1), ("z.dcm", 2)]:
        f = write_ct(tmp_path / name, np.full((2, 2), inst, dtype=np.int16), instance=inst)
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    vol = read_dicom_series(tmp_path, units="hu")
    np.testing.assert_allclose(vol.image[:, 0, 0].numpy(), [1 * SLOPE + INTERCEPT,
                                                            2 * SLOPE + INTERCEPT,
                                                            3 * SLOPE + INTERCEPT])
    assert vol.slice_positions is None


def test_rescale_applied_per_file(tmp_path):
    write_ct(tmp_path / "1.dcm", np.full((2, 2), 10, np.int16), z=0.0, slope=1.0, intercept=0.0)
    write_ct(tmp_path / "2.dcm", np.full((2, 2), 10, np.int16), z=1.0, slope=3.0,
             intercept=-1000.0)
    hu = read_dicom(tmp_path, units="hu")
    assert hu[0, 0, 0].item() == 10.0 and hu[1, 0, 0].item() == -970.0


def test_compressed_transfer_syntax_error(tmp_path):
    from pydicom.pixels import get_decoder

    raw = np.zeros((8, 8), dtype=np.int16)
    junk = bytes(range(256)) * 2
    for uid in (JPEGLSLossless, JPEG2000Lossless):
        f = write_ct(tmp_path / f"{uid.name[:8].replace(' ', '')}.dcm", raw,
                     transfer_syntax=uid, pixel_data=encapsulate([junk]))
        if get_decoder(uid).is_available:
            # A plugin is installed: decoding the junk fails, and the error still names
            # the file and the transfer syntax.
            with pytest.raises(ValueError) as info:
                read_dicom(f)
            msg = str(info.value)
            assert str(f) in msg and uid.name in msg
        else:
            with pytest.raises(MissingDecoderError) as info:
                read_dicom(f)
            msg = str(info.value)
            assert isinstance(info.value, ImportError)
            assert str(f) in msg and uid.name in msg and "pip install" in msg
            assert "pylibjpeg" in msg or "gdcm" in msg or "pyjpegls" in msg


def test_missing_decoder_message_lists_packages(tmp_path, monkeypatch):
    # Whatever is installed here, a JPEG 2000 file without a decoder says what to install.
    import pydicom.pixels

    class NoDecoder:
        is_available = False
        missing_dependencies = [
            "gdcm - requires gdcm>=3.0.10",
            "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0",
        ]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoDecoder())
    f = write_ct(tmp_path / "j2k.dcm", np.zeros((4, 4), np.int16),
                 transfer_syntax=JPEG2000Lossless, pixel_data=encapsulate([b"\0" * 64]))
    with pytest.raises(MissingDecoderError,
                       match=r"JPEG 2000 Image Compression \(Lossless Only\).*"
                             r"pip install python-gdcm; pip install pylibjpeg pylibjpeg-openjpeg"):
        read_dicom(f)


def test_not_dicom_names_file(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("this is not an image\n" * 20)
    with pytest.raises(ValueError, match="notes.txt.*not a DICOM file"):
        read_dicom(txt)
    with pytest.raises(ValueError, match="notes.txt"):
        read_dicom_series(txt)
    with pytest.raises(FileNotFoundError, match="nothere"):
        read_dicom(tmp_path / "nothere.dcm")


def test_missing_pixel_data(tmp_path):
    f = write_ct(tmp_path / "nopix.dcm", np.zeros((0, 0), np.int16))
    assert "PixelData" not in pydicom.dcmread(f)
    with pytest.raises(ValueError, match="nopix.dcm.*no pixel data"):
        read_dicom(f)
    # A series in which one file lacks pixel data names that file.
    d = tmp_path / "series"
    d.mkdir()
    write_ct(d / "ok.dcm", np.zeros((2, 2), np.int16), z=0.0)
    write_ct(d / "bad.dcm", np.zeros((0, 0), np.int16), z=1.0)
    with pytest.raises(ValueError, match="bad.dcm.*no pixel data"):
        read_dicom(d)


def test_wrong_dimensions(tmp_path):
    frames = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    f = write_ct(tmp_path / "multi.dcm", frames, frames=2,
                 pixel_data=frames.astype("<i2").tobytes())
    with pytest.raises(ValueError, match="multi.dcm.*multi-frame.*2 frames"):
        read_dicom(f)
    d = tmp_path / "mixed"
    d.mkdir()
    write_ct(d / "a.dcm", np.zeros((3, 4), np.int16), z=0.0)
    write_ct(d / "b.dcm", np.zeros((3, 5), np.int16), z=1.0)
    with pytest.raises(ValueError, match=r"b.dcm.*shape \(3, 5\).*\(3, 4\)"):
        read_dicom(d)


def test_empty_directory_and_no_dicom(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        read_dicom(d)
    (d / "readme.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match="no DICOM files"):
        read_dicom(d)


def test_non_dicom_files_in_series_dir_are_skipped(tmp_path):
    write_ct(tmp_path / "a.dcm", np.ones((2, 2), np.int16), z=0.0)
    write_ct(tmp_path / "b.dcm", np.ones((2, 2), np.int16), z=1.0)
    (tmp_path / "README").write_text("scan notes")
    assert read_dicom(tmp_path).shape == (2, 2, 2)


def test_two_series_error_and_pick(tmp_path):
    write_ct(tmp_path / "a1.dcm", np.full((2, 2), 1, np.int16), z=0.0, series_uid="1.2.3.100")
    write_ct(tmp_path / "a2.dcm", np.full((2, 2), 1, np.int16), z=1.0, series_uid="1.2.3.100")
    write_ct(tmp_path / "b1.dcm", np.full((3, 3), 2, np.int16), z=0.0, series_uid="1.2.3.200")
    with pytest.raises(ValueError) as info:
        read_dicom(tmp_path)
    msg = str(info.value)
    assert "1.2.3.100" in msg and "1.2.3.200" in msg and "series_uid" in msg
    assert read_dicom(tmp_path, series_uid="1.2.3.100").shape == (2, 2, 2)
    assert read_dicom(tmp_path, series_uid="1.2.3.200", units="hu")[0, 0, 0].item() == \
        2 * SLOPE + INTERCEPT
    with pytest.raises(ValueError, match="1.2.3.999"):
        read_dicom(tmp_path, series_uid="1.2.3.999")


def test_duplicate_positions_and_orientations(tmp_path):
    d = tmp_path / "dup"
    d.mkdir()
    write_ct(d / "a.dcm", np.zeros((2, 2), np.int16), z=5.0)
    write_ct(d / "b.dcm", np.zeros((2, 2), np.int16), z=5.0)
    with pytest.raises(ValueError, match="share a position"):
        read_dicom(d)
    d = tmp_path / "orient"
    d.mkdir()
    write_ct(d / "a.dcm", np.zeros((2, 2), np.int16), z=0.0)
    write_ct(d / "b.dcm", np.zeros((2, 2), np.int16), z=1.0, orientation=(1, 0, 0, 0, 0, -1))
    with pytest.raises(ValueError, match="ImageOrientationPatient"):
        read_dicom(d)


def test_non_ct_modality_needs_rescaled_units(tmp_path):
    f = write_ct(tmp_path / "mr.dcm", np.full((2, 2), 7, np.int16), modality="MR",
                 sop_class=MRImageStorage, slope=1.0, intercept=0.0)
    with pytest.raises(ValueError, match="MR.*rescaled"):
        read_dicom(f)
    assert read_dicom(f, units="rescaled")[0, 0, 0].item() == 7.0


# ------------------------------------------------------------------------------------------------
# NIfTI
# ------------------------------------------------------------------------------------------------

def _world_rank_check(vol, affine):
    """out[d, h, w] must hold the input voxel whose world (RAS) x decreases with w,
    y decreases with h and z increases with d."""
    X, Y, Z = vol.shape
    ii, jj, kk = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    world = affine @ np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
    x, y, z = (np.round(world[a], 6) for a in range(3))
    # Axis-aligned affines: each world coordinate takes as many values as one axis length.
    xs, ys, zs = np.unique(x), np.unique(y), np.unique(z)
    W, H, D = len(xs), len(ys), len(zs)
    expected = np.zeros((D, H, W))
    w = W - 1 - np.searchsorted(xs, x)   # w = 0: largest x (patient's right)
    h = H - 1 - np.searchsorted(ys, y)   # h = 0: largest y (anterior)
    d = np.searchsorted(zs, z)           # d = 0: smallest z (inferior)
    expected[d, h, w] = vol.ravel()
    return expected


@pytest.mark.parametrize("case", ["lps_like", "permuted"])
def test_nifti_round_trip_orientation(tmp_path, case):
    nib = pytest.importorskip("nibabel")
    shape = (5, 6, 7)
    vol = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # asymmetric, unique
    if case == "lps_like":
        # i towards the patient's left, j towards posterior (as DICOM-converted files), k up.
        affine = np.array([[-2.0, 0, 0, 10], [0, -3.0, 0, 20], [0, 0, 4.0, -30], [0, 0, 0, 1]])
        spacing = (4.0, 3.0, 2.0)
    else:
        # Voxel axis i runs along world z (superior), j along -x, k along +y.
        affine = np.array([[0, -1.5, 0, 0], [0, 0, 2.5, 0], [0.5, 0, 0, 0], [0, 0, 0, 1.0]])
        spacing = (0.5, 2.5, 1.5)
    path = tmp_path / "vol.nii.gz"
    img = nib.Nifti1Image(vol, affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))

    out = read_nifti_volume(path)
    assert out.image.dtype == torch.float32 and out.image.dim() == 3
    expected = _world_rank_check(vol, affine)
    np.testing.assert_array_equal(out.image.numpy(), expected)
    assert out.spacing == pytest.approx(spacing)
    # The returned affine maps output indices to the same world points as the input affine.
    d, h, w = 1, 2, 3
    value = out.image[d, h, w].item()
    src = np.argwhere(vol == value)[0]
    np.testing.assert_allclose(out.affine @ [d, h, w, 1], affine @ [*src, 1])
    assert torch.equal(read_nifti(path), out.image)
    assert torch.equal(read_image(path), out.image)


def test_nifti_displays_like_dicom_axial_series(tmp_path):
    # The same axial series as DICOM files and as a NIfTI file (data[i, j, k] = slice k,
    # row j, column i; affine = DICOM's LPS geometry turned to RAS): both readers agree.
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 2000, size=(4, 5, 6)).astype(np.int16)   # (slices, rows, cols)
    ipp0, dz, (dr, dc) = np.array([-100.0, -120.0, 30.0]), 2.5, (0.7, 0.8)
    d = tmp_path / "axial"
    d.mkdir()
    for k in range(4):
        write_ct(d / f"{(7 * k) % 4}.dcm", raw[k], position=ipp0 + [0, 0, k * dz],
                 spacing=(dr, dc), instance=4 - k)
    lps = np.array([[dc, 0, 0, ipp0[0]], [0, dr, 0, ipp0[1]], [0, 0, dz, ipp0[2]],
                    [0, 0, 0, 1.0]])
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = (raw.transpose(2, 1, 0).astype(np.float32)) * SLOPE + INTERCEPT
    nib.save(nib.Nifti1Image(data, ras), str(tmp_path / "axial.nii"))
    from_dicom = read_dicom_series(d, units="hu")
    from_nifti = read_nifti_volume(tmp_path / "axial.nii")
    assert torch.equal(from_nifti.image, from_dicom.image)
    assert from_nifti.spacing == pytest.approx(from_dicom.spacing)


def test_nifti_units_and_bad_shapes(tmp_path):
    nib = pytest.importorskip("nibabel")
    img = nib.Nifti1Image(np.ones((4, 4, 2), np.float32), np.diag([0.001, 0.001, 0.002, 1]))
    img.header.set_xyzt_units("meter")
    nib.save(img, str(tmp_path / "m.nii"))
    assert read_nifti_volume(tmp_path / "m.nii").spacing == pytest.approx((2.0, 1.0, 1.0))
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 2), np.float32), np.eye(4)),
             str(tmp_path / "t.nii"))
    with pytest.raises(ValueError, match="t.nii.*3-D"):
        read_nifti(tmp_path / "t.nii")
    nib.save(nib.Nifti1Image(np.ones((3, 4), np.float32), np.eye(4)), str(tmp_path / "s.nii"))
    assert read_nifti(tmp_path / "s.nii").shape == (1, 4, 3)


def test_nifti_missing_nibabel_message(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "nibabel" or name.startswith("nibabel."):
            raise ImportError("No module named 'nibabel'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install tomolearn\[nifti\]"):
        read_nifti(tmp_path / "x.nii")


# ------------------------------------------------------------------------------------------------
# NumPy files and dispatch
# ------------------------------------------------------------------------------------------------

def test_npy_npz(tmp_path):
    a2 = np.arange(12, dtype=np.int16).reshape(3, 4)
    a3 = np.random.default_rng(0).random((2, 3, 4))
    np.save(tmp_path / "a.npy", a2)
    np.savez(tmp_path / "one.npz", image=a3)
    np.savez(tmp_path / "two.npz", image=a3, mask=a2)
    np.save(tmp_path / "bad.npy", np.zeros((2, 2, 2, 2)))

    x = read_array(tmp_path / "a.npy")
    assert x.shape == (1, 3, 4) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.from_numpy(a2.astype(np.float32)))
    assert torch.allclose(read_array(tmp_path / "one.npz"), torch.from_numpy(a3).float())
    with pytest.raises(ValueError, match=r"2 arrays.*\['image', 'mask'\]"):
        read_array(tmp_path / "two.npz")
    assert read_array(tmp_path / "two.npz", key="mask").shape == (1, 3, 4)
    with pytest.raises(KeyError, match="nope"):
        read_array(tmp_path / "two.npz", key="nope")
    with pytest.raises(ValueError, match=r"bad.npy.*\(2, 2, 2, 2\)"):
        read_array(tmp_path / "bad.npy")
    assert read_image(tmp_path / "a.npy").shape == (1, 3, 4)
    assert read_image(tmp_path / "two.npz", key="image").shape == (2, 3, 4)


def test_read_image_dispatch(tmp_path):
    raw = raw_of_hu(np.zeros((3, 3)))
    f = write_ct(tmp_path / "IM0001", raw)   # no suffix: detected by the DICM preamble
    assert read_image(f)[0, 1, 1].item() == pytest.approx(MU_WATER)
    d = tmp_path / "series"
    d.mkdir()
    write_ct(d / "s.dcm", raw)
    assert read_image(d).shape == (1, 3, 3)
    other = tmp_path / "picture.xyz"
    other.write_bytes(b"\x89PNG" + b"\0" * 200)
    with pytest.raises(ValueError, match="picture.xyz.*unknown image file type"):
        read_image(other)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.nii")


# ------------------------------------------------------------------------------------------------
# Resampling and value range
# ------------------------------------------------------------------------------------------------

def disc(n, radius, value=1.0, dtype=torch.float64):
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n, dtype=dtype), torch.arange(n, dtype=dtype),
                            indexing="ij")
    return ((yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2).to(dtype) * value


@pytest.mark.parametrize("shape", [(128, 128), (100, 77), (300, 400)])
def test_resample_constant_stays_constant(shape):
    img = torch.full((2, 256, 200), 3.5, dtype=torch.float32)
    out = resample(img, shape)
    assert out.shape == (2, *shape) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 3.5), atol=1e-5)


def test_resample_disc_area_preserved():
    img = disc(512, 150.0)
    area = img.sum().item()
    # Integer factor: the box average preserves the integral exactly.
    out = resample(img, 128)
    assert out.shape == (128, 128)
    assert out.sum().item() * 16 == pytest.approx(area, rel=1e-12)
    # Non-integer down-sampling and up-sampling: within a few per cent.
    for n in (97, 200, 700):
        out = resample(img, (n, n))
        assert out.sum().item() * (512 / n) ** 2 == pytest.approx(area, rel=0.02)
    # Area mode = averaging blocks, as torch's "area" interpolation does for integer factors.
    ref = torch.nn.functional.interpolate(img[None, None], size=(128, 128), mode="area")[0, 0]
    assert torch.allclose(resample(img, 128), ref)


def test_resample_upsampling_matches_bilinear():
    img = torch.rand(1, 20, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = resample(img, (50, 70))
    ref = torch.nn.functional.interpolate(img[None], size=(50, 70), mode="bilinear",
                                          align_corners=False)[0]
    assert torch.allclose(out, ref, atol=1e-12)


def test_resample_with_spacing_crops_and_pads():
    # 512 x 512 at 0.7 mm (358.4 mm field of view), disc of radius 50 mm at the centre.
    img = disc(512, 50 / 0.7)
    target = 260 / 128   # LoDoPaB's 260 mm field of view on 128 pixels
    out = resample(img, (128, 128), spacing=0.7, target_spacing=target)
    assert out.shape == (128, 128)
    area_mm2 = out.sum().item() * target ** 2
    assert area_mm2 == pytest.approx(math.pi * 50 ** 2, rel=0.02)
    # Field of view larger than the input: padded with `fill`.
    out = resample(torch.ones(10, 10), (20, 20), spacing=1.0, target_spacing=1.0, fill=-7.0)
    assert torch.all(out[5:15, 5:15] == 1.0) and torch.all(out[:5] == -7.0)
    assert torch.all(out[:, 15:] == -7.0)
    # Shape from the spacings.
    assert resample(torch.ones(3, 100, 50), None, spacing=(1.0, 2.0),
                    target_spacing=4.0).shape == (3, 25, 25)


def test_resample_bad_input():
    with pytest.raises(ValueError, match="shape"):
        resample(torch.ones(4, 4), (0, 3))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(D, H, W\)"):
        resample(torch.ones(1, 1, 4, 4), (2, 2))
    with pytest.raises(ValueError, match="non-finite"):
        resample(torch.tensor([[1.0, float("nan")], [0.0, 0.0]]), (1, 1))
    with pytest.raises(ValueError, match="spacing"):
        resample(torch.ones(4, 4), (2, 2), target_spacing=1.0)
    with pytest.raises(ValueError, match="in-plane"):
        resample(torch.ones(4, 4), None, spacing=(1.0, 1.0, 1.0), target_spacing=2.0)


def test_slice_to_unit_range():
    mu = torch.tensor([-1.0, 0.0, MU_WATER, MU_MAX, 200.0])
    u = slice_to_unit_range(mu)
    assert torch.allclose(u, torch.tensor([0.0, 0.0, MU_WATER / MU_MAX, 1.0, 1.0]))
    assert slice_to_unit_range(np.array([10.0]), mu_max=20.0).item() == 0.5
    with pytest.raises(ValueError):
        slice_to_unit_range(mu, mu_max=0.0)


# ------------------------------------------------------------------------------------------------
# Real slices -> simulated pairs
# ------------------------------------------------------------------------------------------------

SMALL = dict(image_size=64, n_angles=6, n_detectors=91, fine_size=160)


def test_real_measurement_pair_shapes_and_determinism():
    spec = SimulationSpec(**SMALL)
    img = disc(200, 70.0, value=0.6, dtype=torch.float32)
    y, x = real_measurement_pair(img, spec, torch.Generator().manual_seed(3))
    assert y.shape == (1, 6, 91) and y.dtype == torch.float32
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    y2, x2 = real_measurement_pair(img, spec, torch.Generator().manual_seed(3))
    assert torch.equal(y, y2) and torch.equal(x, x2)
    y3, _ = real_measurement_pair(img, spec, torch.Generator().manual_seed(4))
    assert not torch.equal(y, y3)
    y4, _ = real_measurement_pair(img, spec, 3)   # an int seed
    assert torch.equal(y, y4)
    # Ground truth = the slice resampled to the reconstruction grid.
    assert torch.allclose(x[0], resample(img, (64, 64)), atol=1e-6)
    # (1, H, W) input is accepted.
    assert torch.equal(real_measurement_pair(img[None], spec, 3)[0], y)


def test_real_measurement_pair_central_line_integral():
    # Unit disc, diameter 200 px of a 256 px slice -> 200 * 64 / 256 = 50 pixels of the
    # 64 x 64 reconstruction grid; the central ray at every angle crosses it on a diameter.
    spec = SimulationSpec(**SMALL, noise=NoiseSpec(kind="none"))
    img = disc(256, 100.0)
    y, x = real_measurement_pair(img, spec)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    centre = y[0, :, 45]   # 91 bins: bin 45 is centred on the rotation axis
    assert torch.allclose(centre, torch.full_like(centre, 50.0), rtol=0.01)
    # Off-centre bin at distance s: chord 2 sqrt(r^2 - s^2).
    s = 20 * spec.spacing
    chord = 2 * math.sqrt(25.0 ** 2 - s ** 2)
    assert torch.allclose(y[0, :, 45 + 20], torch.full_like(centre, chord), rtol=0.02)


def test_real_measurement_pair_non_square_is_padded():
    spec = SimulationSpec(**SMALL, noise=NoiseSpec(kind="none"))
    img = torch.zeros(128, 256)
    img[:, 64:192] = disc(128, 60.0, dtype=torch.float32)
    _, x = real_measurement_pair(img, spec)
    # Padded to 256 x 256 then shrunk by 4: the disc stays round, centred, radius 15 px.
    assert x[0].sum().item() == pytest.approx(math.pi * 15.0 ** 2, rel=0.03)
    assert torch.allclose(x[0], x[0].T, atol=1e-6)


def test_real_measurement_pair_rejects_out_of_range():
    spec = SimulationSpec(**SMALL)
    with pytest.raises(ValueError, match="slice_to_unit_range"):
        real_measurement_pair(torch.full((32, 32), 20.0), spec)
    with pytest.raises(ValueError, match="one slice"):
        real_measurement_pair(torch.zeros(2, 32, 32), spec)
    with pytest.raises(TypeError, match="SimulationSpec"):
        real_measurement_pair(torch.zeros(32, 32), {"image_size": 64})


def test_dicom_to_measurement_end_to_end(tmp_path):
    hu = np.full((96, 96), -1000.0)
    hu[24:72, 24:72] = 0.0                      # a water square in air
    f = write_ct(tmp_path / "water.dcm", raw_of_hu(hu))
    u = slice_to_unit_range(read_dicom(f)[0])
    assert u.max().item() == pytest.approx(MU_WATER / MU_MAX, rel=1e-6)
    spec = SimulationSpec(**SMALL, noise=NoiseSpec(kind="none"))
    y, x = real_measurement_pair(u, spec)
    # The square is 48 of 96 px, i.e. 32 px of the 64 grid; at the first angle (pi / 12)
    # the central ray crosses it over 32 / cos(pi / 12) pixels (air adds < 0.1 %).
    assert torch.isfinite(y).all() and y.min().item() >= 0.0
    assert x[0, 32, 32].item() == pytest.approx(MU_WATER / MU_MAX, rel=1e-5)
    expected = 32 / math.cos(math.pi / 12) * MU_WATER / MU_MAX
    assert y[0, 0, 45].item() == pytest.approx(expected, rel=0.02)
