"""The figure of one report case: ground truth, sinogram, reconstructions, errors and maps.

:func:`render_case_figure` draws it with matplotlib's Agg backend (no display
needed) and returns the PNG bytes.
"""

from __future__ import annotations

import io

import numpy as np

from .values import _fmt, _image


#: The optional per-method maps of a case: (key, row label, colour map).
_MAP_KINDS = (("uncertainty", "uncertainty", "viridis"),
              ("interval_width", "interval width", "cividis"))


def render_case_figure(case: dict, *, dpi: int = 90, panel_inches: float = 2.1) -> bytes:
    """One case as a PNG figure grid (bytes).

    Layout, one column per panel:

    * row 1: ground truth, sinogram, then every reconstruction, all images on
      the ground truth's grey scale (``vmin, vmax = gt.min(), gt.max()``), one
      grey colour bar (arrows where reconstructions leave that range); the
      sinogram has its own colour bar.  Titles carry PSNR
      (dB) and SSIM per method.
    * row 2: absolute error ``|x_hat - gt|`` per method on ONE colour scale
      shared by all methods of the case (0 to the 99.5th percentile of all
      their errors, arrow on the colour bar when clipped), one colour bar;
      titles carry the RMSE and, when ``case["bounds"]`` has the method, the
      certified RMSE bound (red and "FLAGGED" when flagged).
    * further rows, only when ``case["maps"]`` has them: uncertainty and
      interval-width maps, one shared scale and colour bar per row.

    Parameters
    ----------
    case : dict
        See :func:`write_report`.  Arrays may be numpy or torch, shapes
        ``(H, W)`` (leading singleton axes are dropped); sinogram ``(A, D)`` (any 2-D data
        image; optional ``data_name`` and ``data_axes`` (row, column) label it, default
        "sinogram", ("angle", "detector")).
    dpi : int
        Resolution; the figure is about ``(2.1 (2 + M) + 0.6) x 2.3 R`` inches
        for ``M`` methods and ``R`` rows.
    panel_inches : float
        Side of one panel in inches.

    Returns
    -------
    bytes
        The PNG file.
    """
    # imported here, not with the module: matplotlib takes ~0.25 s to import, and
    # check_report_dir (which the CLI calls before any work) and render_png do not need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    name = str(case.get("name", "case"))
    gt = _image(case["ground_truth"], f"{name}: ground_truth")
    sino = _image(case["sinogram"], f"{name}: sinogram")
    recs = {str(m): _image(r, f"{name}: reconstructions[{m!r}]", gt.shape)
            for m, r in case["reconstructions"].items()}
    methods = list(recs)
    scores = case.get("metrics") or {}
    bounds = case.get("bounds") or {}
    maps = case.get("maps") or {}
    map_rows = []
    for key, label, cmap in _MAP_KINDS:
        present = {m: _image(maps[m][key], f"{name}: maps[{m!r}][{key!r}]", gt.shape)
                   for m in methods if isinstance(maps.get(m), dict) and maps[m].get(key) is not None}
        if present:
            map_rows.append((label, cmap, present))

    n_cols = 2 + max(1, len(methods))
    n_rows = 1 + (1 if methods else 0) + len(map_rows)
    fig = Figure(figsize=(panel_inches * n_cols + 0.6, (panel_inches + 0.5) * n_rows), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n_rows, n_cols + 1, width_ratios=[1.0] * n_cols + [0.07])
    title_kw = dict(fontsize=8.5)

    def image_axes(row, col):
        ax = fig.add_subplot(grid[row, col])
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def label_axes(row, text):
        ax = fig.add_subplot(grid[row, 0:2])
        ax.set_axis_off()
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True,
                transform=ax.transAxes)

    lo, hi = float(np.nanmin(gt)), float(np.nanmax(gt))
    if not hi > lo:
        hi = lo + 1.0
    grey = dict(cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")

    ax = image_axes(0, 0)
    im_grey = ax.imshow(gt, **grey)
    ax.set_title(f"ground truth\nrange [{lo:.2g}, {hi:.2g}]", **title_kw)
    ax = image_axes(0, 1)
    im = ax.imshow(sino, cmap="gray", aspect="auto", interpolation="nearest")
    rows, cols = case.get("data_axes", ("angle", "detector"))
    ax.set_title(f"{case.get('data_name', 'sinogram')}\n{sino.shape[0]} {rows}s × "
                 f"{sino.shape[1]} {cols}s", **title_kw)
    ax.set_xlabel(cols, fontsize=8)
    ax.set_ylabel(rows, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    for j, m in enumerate(methods):
        ax = image_axes(0, 2 + j)
        ax.imshow(recs[m], **grey)
        s = scores.get(m) or {}
        ax.set_title(f"{m}\nPSNR {_fmt(s.get('psnr'), '.2f')} dB · SSIM {_fmt(s.get('ssim'), '.3f')}",
                     **title_kw)
    below = any(float(np.nanmin(r)) < lo for r in recs.values())
    above = any(float(np.nanmax(r)) > hi for r in recs.values())
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get((below, above),
                                                                                "neither")
    cb = fig.colorbar(im_grey, cax=fig.add_subplot(grid[0, n_cols]), extend=extend)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("image value (ground-truth scale)", fontsize=7)

    if methods:
        errors = {m: np.abs(recs[m] - gt) for m in methods}
        pooled = np.concatenate([e.ravel() for e in errors.values()])
        top = float(np.nanpercentile(pooled, 99.5))
        true_max = float(np.nanmax(pooled))
        if not top > 0:
            top = true_max if true_max > 0 else 1.0
        for j, m in enumerate(methods):
            ax = image_axes(1, 2 + j)
            im_err = ax.imshow(errors[m], cmap="inferno", vmin=0.0, vmax=top, interpolation="nearest")
            rmse = float(np.sqrt(np.nanmean(errors[m] ** 2)))
            text = f"|{m} − truth|\nRMSE {rmse:.3g} · max {float(np.nanmax(errors[m])):.2g}"
            color = "black"
            b = bounds.get(m)
            if isinstance(b, dict) and b:
                text += f"\nRMSE bound {_fmt(b.get('rmse_bound'), '.3g')}"
                if b.get("flagged"):
                    text += " · FLAGGED"
                    color = "#b00020"
            ax.set_title(text, color=color, **title_kw)
        cb = fig.colorbar(im_err, cax=fig.add_subplot(grid[1, n_cols]),
                          extend="max" if true_max > top else "neither")
        cb.ax.tick_params(labelsize=7)
        cb.set_label("absolute error", fontsize=7)
        label_axes(1, "absolute error |x̂ − x|\none colour scale for\nall methods of this image\n"
                      f"(0 to {top:.2g}, 99.5th percentile)")

    for r, (label, cmap, present) in enumerate(map_rows, start=2):
        # 0 to the 99.5th percentile, like the error row: a few extreme pixels (an ensemble's
        # members disagreeing at the border) must not wash out every map
        values = np.concatenate([v.ravel() for v in present.values()])
        vmax, true_max = float(np.nanpercentile(values, 99.5)), float(np.nanmax(values))
        if not vmax > 0:
            vmax = true_max if true_max > 0 else 1.0
        for j, m in enumerate(methods):
            if m not in present:
                continue
            ax = image_axes(r, 2 + j)
            im_map = ax.imshow(present[m], cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{m}: {label}\nmean {float(np.nanmean(present[m])):.3g}", **title_kw)
        cb = fig.colorbar(im_map, cax=fig.add_subplot(grid[r, n_cols]),
                          extend="max" if true_max > vmax else "neither")
        cb.ax.tick_params(labelsize=7)
        cb.set_label(label, fontsize=7)
        label_axes(r, f"{label}\none colour scale for\nall methods of this image\n"
                      f"(0 to {vmax:.2g}, 99.5th percentile)")

    dataset = case.get("dataset")
    fig.suptitle(name + (f"  ({dataset})" if dataset else ""), fontsize=11, fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()
