"""Datasets: the DIVal ellipses benchmark, out-of-distribution families, files.

Every simulated sample is a pure function of (spec, split, index); see
:mod:`tomolearn.data.simulation`.
"""

from .datasets import (SHIFTS, SPLIT_SIZES, SimulatedDataset, SpecMismatchError,  # noqa: F401
                       ellipses_benchmark, shifted_spec, spec_differences)
from .families import FAMILIES, register_family  # noqa: F401
from .hdf5 import DatasetFileError, H5Dataset, generate_hdf5, open_hdf5  # noqa: F401
from .io import (MissingDecoderError, hu_to_mu, mu_to_hu, read_array, read_dicom,  # noqa: F401
                 read_dicom_series, read_image, read_nifti, read_nifti_volume,
                 real_measurement_pair, resample, slice_to_unit_range)
from .lodopab import (LoDoPaBDataset, LoDoPaBFileError, lodopab_geometry,  # noqa: F401
                      lodopab_operator)
from .simulation import NoiseSpec, SimulationSpec, sample_rngs, simulate  # noqa: F401
