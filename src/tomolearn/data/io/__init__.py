"""Reading real images: DICOM, NIfTI, TIFF and NumPy files, resampling; writing derived files.

Real CT slices enter tomolearn through this package: read a file or a series
(:func:`read_dicom`, :func:`read_nifti`, :func:`read_tiff`, :func:`read_array`,
or :func:`read_image` to dispatch on the file type), bring the slice to the
reconstruction grid (:func:`resample`), map it to ``[0, 1]`` the way
LoDoPaB-CT does (:func:`slice_to_unit_range`); simulating CT measurements of
them (``real_measurement_pair``) and the inputs of ``tomolearn reconstruct``
(a sinogram, or an image to simulate data from) are the CT modality's
(:mod:`tomolearn.modalities.ct`); :func:`png_bytes`,
:func:`derived_dicom_bytes` and :func:`derived_nifti_bytes` write its results.

Modules
-------
``units`` HU <-> attenuation; ``dicom_pixels`` one DICOM file's pixels;
``dicom`` DICOM files and series; ``dicom_write`` derived DICOM files;
``nifti`` NIfTI volumes; ``nifti_write`` derived NIfTI files; ``tiff`` TIFF
images and stacks; ``arrays`` NumPy files (never unpickled); ``dispatch`` the
reader of a file type; ``images`` PNG; ``resample`` grids and value range;
``paths`` path arguments and file types.  Everything public is importable from
``tomolearn.data.io`` itself.

Conventions
-----------
Arrays
    Volumes are ``(D, H, W)`` float32 torch tensors, single slices
    ``(1, H, W)``: ``D`` indexes slices, row 0 of every slice is the top of
    the displayed image (as in :mod:`tomolearn.ct`).
Attenuation
    Linear attenuation coefficients are in 1/m, converted from Hounsfield
    units with LoDoPaB-CT's constants and formula
    (``lodopab_tech_ref/create_dataset.py``)::

        mu = HU * (MU_WATER - MU_AIR) / 1000 + MU_WATER,   clipped at mu >= 0

    with ``MU_WATER = 20`` 1/m and ``MU_AIR = 0.02`` 1/m
    (:mod:`tomolearn.noise`), so 0 HU (water) gives 20 1/m, -1000 HU (air)
    gives 0.02 1/m and 3071 HU gives ``MU_MAX`` = 81.35858 1/m.
Orientation
    DICOM slices keep the stored pixel order (row 0 = first stored row);
    for the usual axial CT orientation (``ImageOrientationPatient`` =
    ``[1, 0, 0, 0, 1, 0]``) that is the radiological display: anterior at
    the top, the patient's right on the image's left.  Slices of a series
    are ordered by increasing position along the slice normal (row
    direction x column direction), i.e. inferior to superior for axial CT.
    NIfTI volumes are brought to the same display (see :func:`read_nifti`).
Lengths
    Pixel and voxel spacings are in millimetres.

References
----------
.. [1] J. Leuschner, M. Schmidt, D. O. Baguer and P. Maass, "LoDoPaB-CT, a
       benchmark dataset for low-dose computed tomography reconstruction",
       Sci. Data 8, 109, 2021; https://github.com/jleuschn/lodopab_tech_ref
.. [2] DICOM PS3.3, C.7.6.2 (Image Plane Module) and C.11.1 (Modality LUT).
"""

from .arrays import load_npy, load_npz, npy_header, npz_keys, read_array
from .dicom import DicomVolume, read_dicom, read_dicom_series
from .dicom_pixels import MissingDecoderError
from .dicom_write import check_dicom_writable, derived_dicom_bytes
from .dispatch import looks_like_dicom, read_image
from .images import png_bytes, read_grey_png
from .nifti import NiftiVolume, read_nifti, read_nifti_volume
from .nifti_write import derived_nifti_affine, derived_nifti_bytes
from .paths import PathLike, file_type
from .resample import resample, slice_to_unit_range
from .tiff import read_tiff
from .units import hu_to_mu, mu_to_hu

__all__ = [
    "DicomVolume",
    "MissingDecoderError",
    "NiftiVolume",
    "PathLike",
    "check_dicom_writable",
    "derived_dicom_bytes",
    "derived_nifti_affine",
    "derived_nifti_bytes",
    "file_type",
    "hu_to_mu",
    "load_npy",
    "load_npz",
    "looks_like_dicom",
    "mu_to_hu",
    "npy_header",
    "npz_keys",
    "png_bytes",
    "read_array",
    "read_dicom",
    "read_dicom_series",
    "read_grey_png",
    "read_image",
    "read_nifti",
    "read_nifti_volume",
    "read_tiff",
    "resample",
    "slice_to_unit_range",
]
