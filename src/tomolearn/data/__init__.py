"""Data: image families (modality-free), datasets (task + family + split + seed), HDF5 files
and readers of real images.

Every simulated sample is a pure function of (task, family, split, index); the tasks that
simulate measurements live in :mod:`tomolearn.modalities` and are looked up by name.
"""

from .datasets import (SPLIT_IDS, SPLIT_SIZES, SimulatedDataset, SpecMismatchError,  # noqa: F401
                       ellipses_benchmark, sample_rngs, spec_differences)
from .families import FAMILIES, register_family  # noqa: F401
from .denoising import DenoisingDataset, stack_noise_level  # noqa: F401
from . import real_slices  # noqa: F401  (registers "ct-slice" and "mr-slice")
from . import brain  # noqa: F401  (registers the "brain" family; nilearn is imported on use)
from .hdf5 import DatasetFileError, H5Dataset, generate_hdf5, open_hdf5  # noqa: F401
from .io import (MissingDecoderError, hu_to_mu, mu_to_hu, read_array, read_dicom,  # noqa: F401
                 read_dicom_series, read_image, read_nifti, read_nifti_volume, resample,
                 slice_to_unit_range)
