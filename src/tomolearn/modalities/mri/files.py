"""MRI files: fastMRI-style HDF5 k-space files with their ISMRMRD header, and MR DICOM images.

fastMRI's layout [1]_ (one HDF5 file per volume):

* ``kspace``: ``(slices, coils, H, W)`` complex64 (multi-coil) or ``(slices, H, W)``, ``H``
  the readout (ISMRMRD encoded ``x``), ``W`` the phase encoding (encoded ``y``, the axis 1-D
  masks select), zero frequency at ``(H // 2, W // 2)``;
* ``reconstruction_rss``: ``(slices, H', W')`` float32, root-sum-of-squares of the inverse
  centred DFT of the fully sampled coil k-space (fastMRI's target, cropped to 320 x 320);
* ``mask`` (test and challenge files): the sampled phase-encoding columns ``(W,)``;
* ``ismrmrd_header``: the ISMRMRD XML header [2]_ as bytes;
* attributes ``acquisition`` (``"AXT2"``, ``"CORPD_FBK"``, ...), ``max`` and ``norm`` (maximum
  and Frobenius norm of the volume's ``reconstruction_rss``), ``patient_id`` (an anonymous
  hash); test files also carry ``acceleration`` and ``num_low_frequency``.

References
----------
.. [1] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for accelerated MRI",
       arXiv:1811.08839, 2018; ``fastmri/data/mri_data.py`` (``_retrieve_metadata``).
.. [2] S. J. Inati et al., "ISMRM Raw data format: A proposed standard for MRI raw datasets",
       Magn. Reson. Med. 77(1), 411-421, 2017; ``ismrmrd/schema/ismrmrd.xsd``.
.. [3] DICOM PS3.3, C.8.3 (MR Image Module) and C.11.1 (Modality LUT).
"""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from ...data.io import read_dicom_series
from ...files import atomic_write_bytes
from .combine import rss
from ...operators.fourier import fft2c, ifft2c

__all__ = ["ismrmrd_header", "read_ismrmrd_header", "write_fastmri", "read_fastmri",
           "write_fastmri_sample", "read_mr_dicom"]

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"
_GAMMA_BAR_HZ_PER_T = 42.577478518e6  # proton gyromagnetic ratio / 2 pi: the H1 frequency
_TRAJECTORIES = ("cartesian", "epi", "radial", "goldenangle", "spiral", "other")  # the schema's


# -- the ISMRMRD XML header --------------------------------------------------------------------

def _triple(value, name: str, kind) -> Tuple:
    try:
        out = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"{name} must be 3 positive numbers (x, y, z), got {value!r}")
    return out


def _sub(parent, tag: str, text=None):
    el = ET.SubElement(parent, f"{{{ISMRMRD_NS}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def _space(parent, tag: str, matrix, fov):
    space = _sub(parent, tag)
    for group, values in (("matrixSize", matrix), ("fieldOfView_mm", fov)):
        el = _sub(space, group)
        for axis, v in zip("xyz", values):
            _sub(el, axis, f"{v:g}" if isinstance(v, float) else v)


def ismrmrd_header(encoded_matrix: Sequence[int], recon_matrix: Optional[Sequence[int]] = None,
                   encoded_fov_mm: Sequence[float] = (240.0, 240.0, 5.0),
                   recon_fov_mm: Optional[Sequence[float]] = None, n_coils: int = 1,
                   field_strength_t: float = 3.0, trajectory: str = "cartesian") -> bytes:
    """A minimal valid ISMRMRD XML header (UTF-8 bytes).

    Parameters
    ----------
    encoded_matrix, recon_matrix : 3 positive ints
        ``(x, y, z)`` matrix sizes of the encoded and reconstructed spaces: ``x`` the readout
        (k-space ``H``), ``y`` the phase encoding (``W``), ``z`` 1 for 2-D acquisitions.
        ``recon_matrix`` defaults to ``encoded_matrix``.
    encoded_fov_mm, recon_fov_mm : 3 positive floats
        Fields of view in mm; the recon one defaults to the encoded one.
    n_coils : int
        Receiver channels (``acquisitionSystemInformation/receiverChannels``).
    field_strength_t : float
        Field strength in tesla; the (required) H1 resonance frequency is
        ``42.577478518 MHz/T`` times it.
    trajectory : {"cartesian", "epi", "radial", "goldenangle", "spiral", "other"}

    Returns
    -------
    bytes
        The elements the schema requires (``experimentalConditions``, ``encoding`` with
        ``encodedSpace``, ``reconSpace``, ``encodingLimits``, ``trajectory``) in schema order,
        the field strength and receiver channels; ``kspace_encoding_step_1`` is ``0 .. y - 1``
        with centre ``y // 2`` (fastMRI's loader reads it to find the sampled region).
    """
    enc = _triple(encoded_matrix, "encoded_matrix", int)
    rec = enc if recon_matrix is None else _triple(recon_matrix, "recon_matrix", int)
    efov = _triple(encoded_fov_mm, "encoded_fov_mm", float)
    rfov = efov if recon_fov_mm is None else _triple(recon_fov_mm, "recon_fov_mm", float)
    if isinstance(n_coils, bool) or not isinstance(n_coils, (int, np.integer)) or n_coils < 1:
        raise ValueError(f"n_coils must be a positive int, got {n_coils!r}")
    if not (isinstance(field_strength_t, (int, float)) and field_strength_t > 0):
        raise ValueError(f"field_strength_t must be a positive number, got {field_strength_t!r}")
    if trajectory not in _TRAJECTORIES:
        raise ValueError(f"trajectory must be one of {_TRAJECTORIES}, got {trajectory!r}")
    root = ET.Element(f"{{{ISMRMRD_NS}}}ismrmrdHeader")
    system = _sub(root, "acquisitionSystemInformation")
    _sub(system, "systemFieldStrength_T", f"{float(field_strength_t):g}")
    _sub(system, "receiverChannels", int(n_coils))
    _sub(_sub(root, "experimentalConditions"), "H1resonanceFrequency_Hz",
         int(round(_GAMMA_BAR_HZ_PER_T * field_strength_t)))
    encoding = _sub(root, "encoding")
    _space(encoding, "encodedSpace", enc, efov)
    _space(encoding, "reconSpace", rec, rfov)
    limits = _sub(encoding, "encodingLimits")
    for tag, n in (("kspace_encoding_step_1", enc[1]), ("kspace_encoding_step_2", enc[2])):
        lim = _sub(limits, tag)
        for key, value in (("minimum", 0), ("maximum", n - 1), ("center", n // 2)):
            _sub(lim, key, value)
    _sub(encoding, "trajectory", trajectory)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True,
                       default_namespace=ISMRMRD_NS)


def _find(root, path: str, where: str):
    el = root.find("/".join(f"ns:{p}" for p in path.split("/")), {"ns": ISMRMRD_NS})
    if el is None or el.text is None:
        raise ValueError(f"{where}: ISMRMRD header has no {path}")
    return el.text.strip()


def read_ismrmrd_header(xml: Union[bytes, str], where: str = "header") -> dict:
    """The fields of an ISMRMRD XML header that tomolearn and fastMRI use.

    Parameters
    ----------
    xml : bytes or str
    where : str
        Names the source in error messages (e.g. the file).

    Returns
    -------
    dict
        ``encoded_matrix``, ``recon_matrix`` (``(x, y, z)`` ints), ``encoded_fov_mm``,
        ``recon_fov_mm`` (``(x, y, z)`` floats), ``n_coils`` (int or None),
        ``field_strength_t`` (float or None), ``trajectory`` (str or None) and
        ``kspace_encoding_step_1`` (``{"minimum", "maximum", "center"}`` or None).
        A :class:`ValueError` says when the XML does not parse, is not an ISMRMRD header or
        lacks the matrix sizes or fields of view.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"{where}: ISMRMRD header is not valid XML ({e})") from None
    if root.tag != f"{{{ISMRMRD_NS}}}ismrmrdHeader":
        raise ValueError(f"{where}: root element is {root.tag!r}, not an ismrmrdHeader in "
                         f"namespace {ISMRMRD_NS}")

    def value(path, kind, required=True):
        try:
            return kind(_find(root, path, where))
        except ValueError as e:
            if not required:
                return None
            raise e if "has no" in str(e) else ValueError(
                f"{where}: ISMRMRD header has a non-numeric {path} ({e})") from None

    def triple(path, kind):
        return tuple(value(f"encoding/{path}/{a}", kind) for a in "xyz")

    step1 = "encoding/encodingLimits/kspace_encoding_step_1/"
    limits = None if value(step1 + "center", int, False) is None else \
        {k: value(step1 + k, int) for k in ("minimum", "maximum", "center")}
    system = "acquisitionSystemInformation/"
    return {"encoded_matrix": triple("encodedSpace/matrixSize", int),
            "recon_matrix": triple("reconSpace/matrixSize", int),
            "encoded_fov_mm": triple("encodedSpace/fieldOfView_mm", float),
            "recon_fov_mm": triple("reconSpace/fieldOfView_mm", float),
            "n_coils": value(system + "receiverChannels", int, False),
            "field_strength_t": value(system + "systemFieldStrength_T", float, False),
            "trajectory": value("encoding/trajectory", str, False),
            "kspace_encoding_step_1": limits}


# -- fastMRI HDF5 files ------------------------------------------------------------------------

def _array(value) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)


def write_fastmri(path, kspace, reconstruction_rss=None, mask=None, header=None, *,
                  acquisition: str = "SIMULATED", patient_id: Optional[str] = None,
                  attrs: Optional[dict] = None, overwrite: bool = False) -> Path:
    """Write one volume as a fastMRI-style HDF5 file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    kspace : array_like or torch.Tensor, complex, (slices, coils, H, W) or (slices, H, W)
        Multi-coil or single-coil k-space (centred, fastMRI's fft2c convention); stored as
        complex64.
    reconstruction_rss : array_like, real, (slices, H', W'), optional
        The target images; stored as float32.  The attributes ``max`` and ``norm`` are its
        maximum and Frobenius norm (fastMRI's), written only when it is given.
    mask : array_like, (W,) or (H, W), optional
        Sampled k-space (phase-encoding columns for fastMRI's 1-D masks); stored as bool.
    header : bytes or str, optional
        ISMRMRD XML header; default :func:`ismrmrd_header` with the k-space's matrix, the
        target's recon matrix (or the k-space's) and the coil count.  It is parsed
        (:func:`read_ismrmrd_header`) before anything is written.
    acquisition : str
        The ``acquisition`` attribute (fastMRI: ``"AXT2"``, ``"CORPD_FBK"``, ...).
    patient_id : str, optional
        The ``patient_id`` attribute; default the SHA-256 hex digest of the stored k-space
        bytes (anonymous and deterministic).
    attrs : dict, optional
        More file attributes (e.g. ``acceleration``, ``num_low_frequency``); they may not
        replace those set here.
    overwrite : bool
        Replace an existing file; default refuse (:class:`FileExistsError`).

    Returns
    -------
    pathlib.Path
        The file, written whole or not at all (:func:`tomolearn.files.atomic_write_bytes`).
        A :class:`ValueError` names an array of the wrong dimensions, dtype or shape.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    k = _array(kspace)
    if not np.iscomplexobj(k) or k.ndim not in (3, 4) or 0 in k.shape:
        raise ValueError(f"kspace must be complex (slices, coils, H, W) or (slices, H, W), got "
                         f"{k.dtype} {k.shape}")
    k = k.astype(np.complex64)
    datasets = {"kspace": k}
    extra = {}
    if reconstruction_rss is not None:
        r = _array(reconstruction_rss)
        if np.iscomplexobj(r) or not np.issubdtype(r.dtype, np.number) or r.ndim != 3 or \
                r.shape[0] != k.shape[0]:
            raise ValueError(f"reconstruction_rss must be real (slices, H', W') with "
                             f"{k.shape[0]} slices like kspace, got {r.dtype} {r.shape}")
        r = r.astype(np.float32)
        datasets["reconstruction_rss"] = r
        extra = {"max": float(r.max()), "norm": float(np.linalg.norm(r.astype(np.float64)))}
    if mask is not None:
        m = _array(mask)
        if m.shape not in ((k.shape[-1],), tuple(k.shape[-2:])):
            raise ValueError(f"mask must have shape ({k.shape[-1]},) or {tuple(k.shape[-2:])} "
                             f"to match kspace {k.shape}, got {m.shape}")
        datasets["mask"] = m.astype(bool)
    if header is None:
        recon = datasets.get("reconstruction_rss", k).shape[-2:]
        header = ismrmrd_header((k.shape[-2], k.shape[-1], 1), (recon[0], recon[1], 1),
                                n_coils=k.shape[1] if k.ndim == 4 else 1)
    header = header.encode("utf-8") if isinstance(header, str) else bytes(header)
    read_ismrmrd_header(header, where=f"{path} (header to write)")
    base = {"acquisition": str(acquisition),
            "patient_id": patient_id if patient_id is not None else
            hashlib.sha256(k.tobytes()).hexdigest(), **extra}
    clash = sorted(set(attrs or {}) & set(base))
    if clash:
        raise ValueError(f"attrs may not set {', '.join(clash)}; use the arguments")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
        f.create_dataset("ismrmrd_header", data=header)  # a bytes scalar, as fastMRI's
        for key, value in {**base, **(attrs or {})}.items():
            f.attrs[key] = value
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_fastmri(path, slices=None) -> dict:
    """Read a fastMRI-style HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
    slices : int, slice or None
        Read only these slices of ``kspace`` / ``reconstruction_*`` (the arrays keep their
        slice axis); default all.

    Returns
    -------
    dict
        ``kspace`` (torch complex64, ``(slices, coils, H, W)`` or ``(slices, H, W)``),
        ``multicoil`` (bool), ``reconstruction_rss`` and ``reconstruction_esc`` (torch float32
        ``(slices, H', W')`` or None), ``mask`` (torch bool or None), ``ismrmrd_header``
        (bytes or None), ``header`` (:func:`read_ismrmrd_header` of it, or None), ``attrs``
        (the file attributes, NumPy scalars as Python ones) and, with a header,
        fastMRI's ``encoding_size``, ``recon_size``, ``padding_left``, ``padding_right``.

    Raises
    ------
    FileNotFoundError, or ValueError
        If the file is not HDF5, has no ``kspace`` (the message lists what it holds), or a
        dataset has the wrong dtype or dimensions.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if isinstance(slices, int):
        slices = slice(slices, slices + 1 if slices != -1 else None)
    index = slice(None) if slices is None else slices
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not an HDF5 file ({e})") from None
    with f:
        if "kspace" not in f:
            held = sorted(f.keys())
            raise ValueError(f"{path}: no 'kspace' dataset; not a fastMRI file (it holds "
                             f"datasets {held or 'none'} and attributes "
                             f"{sorted(f.attrs.keys()) or 'none'})")
        ks = f["kspace"]
        if not isinstance(ks, h5py.Dataset) or ks.dtype.kind != "c" or ks.ndim not in (3, 4):
            what = f"{ks.dtype} {ks.shape}" if isinstance(ks, h5py.Dataset) else "a group"
            raise ValueError(f"{path}: 'kspace' must be complex (slices, coils, H, W) or "
                             f"(slices, H, W), got {what}")
        out = {"kspace": torch.from_numpy(np.ascontiguousarray(ks[index], np.complex64)),
               "multicoil": ks.ndim == 4}
        for name in ("reconstruction_rss", "reconstruction_esc"):
            d = f.get(name)
            if d is not None and (not isinstance(d, h5py.Dataset) or d.ndim != 3 or
                                  d.dtype.kind not in "fiu" or d.shape[0] != ks.shape[0]):
                raise ValueError(f"{path}: '{name}' must be real (slices, H', W') with "
                                 f"{ks.shape[0]} slices, got {getattr(d, 'dtype', 'a group')} "
                                 f"{getattr(d, 'shape', '')}")
            out[name] = None if d is None else \
                torch.from_numpy(np.ascontiguousarray(d[index], np.float32))
        m = f.get("mask")
        if m is not None and (not isinstance(m, h5py.Dataset) or
                              m.shape not in ((ks.shape[-1],), tuple(ks.shape[-2:]))):
            raise ValueError(f"{path}: 'mask' must have shape ({ks.shape[-1]},) or "
                             f"{tuple(ks.shape[-2:])}, got {getattr(m, 'shape', 'a group')}")
        out["mask"] = None if m is None else torch.from_numpy(np.asarray(m[()]) != 0)
        h = f.get("ismrmrd_header")
        raw = None if h is None else h[()]
        out["ismrmrd_header"] = None if raw is None else (
            raw.encode() if isinstance(raw, str) else bytes(raw))
        out["attrs"] = {k: (v.item() if isinstance(v, np.generic) else
                            v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    out["header"] = None
    if out["ismrmrd_header"] is not None:
        hdr = read_ismrmrd_header(out["ismrmrd_header"], where=str(path))
        out["header"] = hdr
        out["encoding_size"], out["recon_size"] = hdr["encoded_matrix"], hdr["recon_matrix"]
        lim = hdr["kspace_encoding_step_1"]
        if lim is not None:  # fastMRI's _retrieve_metadata
            out["padding_left"] = hdr["encoded_matrix"][1] // 2 - lim["center"]
            out["padding_right"] = out["padding_left"] + lim["maximum"] + 1
    return out


def write_fastmri_sample(path, y, x, task, *, acquisition: str = "SIMULATED",
                         encoded_fov_mm: Sequence[float] = (240.0, 240.0, 5.0),
                         overwrite: bool = False) -> Path:
    """Write one sample of an ``"mri"`` dataset as a one-slice fastMRI-style test file.

    Parameters
    ----------
    path : str or os.PathLike
    y, x : torch.Tensor, complex, (1, n_coils, H, W) and (1, H, W)
        The sample (``dataset[i]``): noisy zero-filled multi-coil k-space and the truth.
    task : MRITask
        The task the sample comes from (its coil maps, mask and spec).
    acquisition, overwrite
        As :func:`write_fastmri`.
    encoded_fov_mm : 3 floats
        Nominal field of view of the header in mm (tasks have no physical size; the
        ``"brain"`` family's field of view is 240 mm).

    Notes
    -----
    Contents: ``kspace`` = ``y`` as it is, ``(1, n_coils, H, W)`` complex64; ``mask`` = the
    task's sampling mask, ``(W,)`` when every row is the same (fastMRI's 1-D masks), else
    ``(H, W)``; ``reconstruction_rss`` = fastMRI's target computed from the truth,
    ``rss_c |ifft2c(fft2c(S_c x))| = sqrt(sum_c |S_c x|^2)``, ``(1, H, W)`` float32, with
    the task's coil maps ``S`` (so ``|x|`` for maps with ``sum_c |S_c|^2 = 1``), not cropped
    to 320 x 320; header = :func:`ismrmrd_header` with encoded and recon matrices
    ``(H, W, 1)`` and ``n_coils``; attributes ``acquisition``, ``max``, ``norm``,
    ``patient_id`` (SHA-256 of the k-space), ``acceleration`` and ``num_low_frequency``
    (the task's nominal values, as fastMRI's test files), ``tomolearn_task`` (the task's
    spec as JSON).
    """
    if not (hasattr(task, "coil_maps") and hasattr(task, "sampling_mask")):
        raise TypeError(f"task must be an MRI task (with coil_maps and sampling_mask), got "
                        f"{type(task).__name__}")
    n, c = task.image_size, task.n_coils
    y = y[0] if isinstance(y, torch.Tensor) and y.dim() == 4 else y
    x = x[0] if isinstance(x, torch.Tensor) and x.dim() == 3 else x
    if not (isinstance(y, torch.Tensor) and y.is_complex() and tuple(y.shape) == (c, n, n) and
            isinstance(x, torch.Tensor) and tuple(x.shape) == (n, n)):
        raise ValueError(f"y and x must be the task's complex k-space (1, {c}, {n}, {n}) and "
                         f"image (1, {n}, {n}), got {getattr(y, 'dtype', type(y).__name__)} "
                         f"{tuple(getattr(y, 'shape', ()))} and {tuple(getattr(x, 'shape', ()))}")
    maps = task.coil_maps().to(torch.complex128)
    full = fft2c(maps * x.detach().cpu().to(torch.complex128))  # fully sampled coil k-space
    target = rss(ifft2c(full), dim=0)
    mask = task.sampling_mask()
    mask = mask[0] if bool((mask == mask[:1]).all()) else mask
    num_low = int(round(n * task.center_fraction))
    attrs = {"acceleration": float(task.acceleration), "num_low_frequency": num_low,
             "tomolearn_task": json.dumps(task.spec(), sort_keys=True)}
    header = ismrmrd_header((n, n, 1), (n, n, 1), encoded_fov_mm=encoded_fov_mm, n_coils=c)
    return write_fastmri(path, y.detach().cpu()[None], target[None], mask, header,
                         acquisition=acquisition, attrs=attrs, overwrite=overwrite)


# -- MR DICOM magnitude images -----------------------------------------------------------------

#: ComplexImageComponent / ImageType values of non-magnitude images (Siemens "P", Philips "P_FFE").
_NOT_MAGNITUDE = {"PHASE", "REAL", "IMAGINARY"}
_NOT_MAGNITUDE_TYPES = {"P", "PHASE", "PHASE MAP", "REAL", "IMAGINARY"}


def read_mr_dicom(path, *, series_uid: Optional[str] = None, normalize: bool = True
                  ) -> Tuple[torch.Tensor, dict]:
    """Read an MR magnitude image (a DICOM file) or series (a directory).

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file or a directory holding one series (read with
        :func:`tomolearn.data.io.read_dicom_series`, ``units="rescaled"``: stored values times
        RescaleSlope plus RescaleIntercept, slices ordered along the slice normal).
    series_uid : str, optional
        Which series to read when the directory holds several.
    normalize : bool
        Divide by the series maximum, so values lie in [0, 1] (default; an all-zero image
        is left as it is); False keeps the rescaled values (arbitrary units).

    Returns
    -------
    image : torch.Tensor, float64, (H, W) for a file, (N, H, W) for a directory of N slices
        Values pass through float32 (:func:`~tomolearn.data.io.read_dicom_series`).
    meta : dict
        ``modality``, ``scale`` (the divisor, 1.0 without normalisation), ``pixel_spacing``
        ((row, column) mm), ``slice_spacing`` (mm), ``slice_positions``, ``orientation``,
        ``series_uid``, ``files`` and, from the first file, ``echo_time_ms``,
        ``repetition_time_ms``, ``field_strength_t``, ``image_type``,
        ``photometric_interpretation``, ``series_description`` (None where absent).

    Raises
    ------
    ValueError
        If a file is not MR, not a magnitude image (ImageType or ComplexImageComponent says
        phase, real or imaginary) or negative; otherwise as ``read_dicom_series``.
    """
    path = Path(path)
    vol = read_dicom_series(path, series_uid=series_uid, units="rescaled")
    for f, ds in zip(vol.files, vol.datasets):
        modality = str(ds.get("Modality", "")) or None
        if modality != "MR":
            raise ValueError(f"{f}: modality is {modality or 'missing'}, not MR; read other "
                             "images with tomolearn.data.io.read_dicom_series")
        component = str(ds.get("ComplexImageComponent", "") or "").upper()
        image_type = [str(v).upper() for v in (ds.get("ImageType", None) or [])]
        if component in _NOT_MAGNITUDE or any(v in _NOT_MAGNITUDE_TYPES or v.startswith("P_")
                                              for v in image_type[2:]):
            raise ValueError(f"{f}: not a magnitude image (ImageType {image_type}, "
                             f"ComplexImageComponent {component or 'absent'})")
    image = vol.image.to(torch.float64)
    if float(image.min()) < 0:
        raise ValueError(f"{path}: holds negative values (minimum {float(image.min()):g}); "
                         "not a magnitude image")
    top = float(image.max())
    scale = top if normalize and top > 0 else 1.0  # an all-zero image stays as it is
    image = image / scale
    first = vol.datasets[0]

    def get(key, kind=float):
        try:
            return kind(first.get(key)) if first.get(key) not in (None, "") else None
        except (TypeError, ValueError):
            return None

    meta = {"modality": "MR", "scale": scale, "pixel_spacing": vol.pixel_spacing,
            "slice_spacing": vol.slice_spacing, "slice_positions": vol.slice_positions,
            "orientation": vol.orientation, "series_uid": vol.series_uid, "files": vol.files,
            "echo_time_ms": get("EchoTime"), "repetition_time_ms": get("RepetitionTime"),
            "field_strength_t": get("MagneticFieldStrength"),
            "image_type": [str(v) for v in (first.get("ImageType", None) or [])],
            "photometric_interpretation": get("PhotometricInterpretation", str),
            "series_description": get("SeriesDescription", str)}
    return (image if path.is_dir() else image[0]), meta
