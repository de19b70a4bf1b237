"""STIR Interfile images and sinograms (round trips, errors) and PET DICOM rescaling."""

import numpy as np
import pytest
import torch

from tomolearn.modalities import pet


def test_image_round_trip_and_no_silent_overwrite(tmp_path):
    img = np.random.default_rng(0).random((5, 7)) * 1e4
    hv = pet.write_interfile_image(tmp_path / "x.hv", img, voxel_mm=3.125)
    assert (tmp_path / "x.v").stat().st_size == 5 * 7 * 4
    back, header = pet.read_interfile(hv)
    np.testing.assert_allclose(back, img.astype(np.float32), rtol=0, atol=0)
    assert header["matrix size [1]"] == "7" and header["scaling factor (mm/pixel) [1]"] == "3.125"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pet.write_interfile_image(hv, img, voxel_mm=3.125)
    pet.write_interfile_image(hv, 2 * img, voxel_mm=3.125, overwrite=True)
    np.testing.assert_allclose(pet.read_interfile(hv)[0], (2 * img).astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.hv", "x.v"]  # no temporaries left


def test_sinogram_round_trip_keeps_the_scanner(tmp_path):
    t = pet.PETTask.tiny()
    y = t.simulate(t.ground_truth(torch.ones(1, 1, 32, 32, dtype=torch.float64)),
                   torch.Generator().manual_seed(0))
    hs = pet.write_interfile_sinogram(tmp_path / "prompts.hs", y, pet.scanner("mct"), t.bin_mm)
    back, header = pet.read_interfile(hs)
    assert back.shape == (21, 50)
    np.testing.assert_array_equal(back, y[0, 0].numpy())  # counts are exact in float32
    assert header["number of detectors per ring"] == "672"
    assert header["inner ring diameter (cm)"] == "84.2"
    assert header["matrix axis label [3]"] == "view"


def test_other_number_formats_and_clear_errors(tmp_path):
    data = np.arange(12, dtype=">i2").reshape(3, 4)
    (tmp_path / "d.v").write_bytes(data.tobytes())
    header = ["!INTERFILE :=", "name of data file := d.v", "imagedata byte order := BIGENDIAN",
              "!number format := signed integer", "!number of bytes per pixel := 2",
              "number of dimensions := 3", "!matrix size [1] := 4", "!matrix size [2] := 3",
              "!matrix size [3] := 1", "image scaling factor[1] := 0.5", "!END OF INTERFILE :="]
    (tmp_path / "d.hv").write_text("\n".join(header))
    np.testing.assert_array_equal(pet.read_interfile(tmp_path / "d.hv")[0], data * 0.5)
    (tmp_path / "bad.hv").write_text("\n".join(h.replace("signed integer", "bit") for h in header))
    with pytest.raises(pet.InterfileError, match="unsupported number format 'bit'"):
        pet.read_interfile(tmp_path / "bad.hv")
    (tmp_path / "gone.hv").write_text("\n".join(h.replace("d.v", "gone.v") for h in header))
    with pytest.raises(FileNotFoundError, match="names the data file 'gone.v'"):
        pet.read_interfile(tmp_path / "gone.hv")
    (tmp_path / "short.hv").write_text("\n".join(h.replace("[2] := 3", "[2] := 30") for h in header))
    with pytest.raises(pet.InterfileError, match="holds 24 bytes"):
        pet.read_interfile(tmp_path / "short.hv")
    with pytest.raises(FileNotFoundError, match="no Interfile header"):
        pet.read_interfile(tmp_path / "none.hv")


def test_pet_dicom_is_rescaled_to_bq_per_ml(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"  # PET image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Units = "PT", "BQML"
    ds.Rows, ds.Columns = 2, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = "2.5", "10"
    ds.PixelSpacing = ["4.07", "4.07"]
    stored = np.array([[0, 1, 2], [100, 200, 300]], dtype=np.uint16)
    ds.PixelData = stored.tobytes()
    path = tmp_path / "pet.dcm"
    ds.save_as(str(path), enforce_file_format=True)
    image, info = pet.read_pet_dicom(path)
    np.testing.assert_allclose(image, stored * 2.5 + 10)
    assert info["units"] == "Bq/ml" and info["pixel_mm"] == (4.07, 4.07)
    ds.Modality = "CT"
    ds.save_as(str(tmp_path / "ct.dcm"), enforce_file_format=True)
    with pytest.raises(ValueError, match="not a PET image"):
        pet.read_pet_dicom(tmp_path / "ct.dcm")
