"""The generalisation study as a Markdown table and a PSNR-per-shift chart."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_write_bytes

__all__ = ["format_markdown", "plot_generalisation", "generalisation_figure"]


def format_markdown(report: dict) -> str:
    """One Markdown table of a :func:`generalisation_report` (rows in report order)."""
    if not isinstance(report, dict) or "results" not in report:
        raise ValueError("expected the dict returned by generalisation_report (with 'results')")

    def f(v, spec):
        return "–" if v is None else format(v, spec)

    lines = ["| method | shift | dataset | n | PSNR | ± | SSIM | ΔPSNR | ΔSSIM | pixel coverage "
             "| width | RMSE bound | bound coverage | detection AUROC | flagged | scale "
             "| map–error r | map–RMSE ρ |",
             "|" + "---|" * 18]
    for r in report["results"]:
        lines.append(
            f"| {r['method']} | {r['shift']} | {r['dataset']} | {r['n']} | {r['psnr']:.2f} | "
            f"{r['psnr_std']:.2f} | {r['ssim']:.3f} | {r['psnr_delta']:+.2f} | {r['ssim_delta']:+.3f} | "
            f"{f(r.get('coverage'), '.3f')} | {f(r.get('interval_width'), '.4f')} | "
            f"{f(r.get('rmse_bound'), '.4f')} | {f(r.get('bound_coverage'), '.2f')} | "
            f"{f(r.get('detection_auroc'), '.2f')} | {f(r.get('flagged'), '.2f')} | "
            f"{r.get('scale') or '–'} | {f(r.get('uncertainty_error_correlation'), '.2f')} | "
            f"{f(r.get('uncertainty_rmse_spearman'), '.2f')} |")
    lines += ["", "ΔPSNR, ΔSSIM: this shift minus the method's in-distribution row (\"none\"); "
              "negative is worse (every Δ tomolearn prints is row minus reference)."]
    return "\n".join(lines) + "\n"


def plot_generalisation(report: dict, path) -> None:
    """Grouped bar chart of PSNR (dB) per shift, one bar per method, written atomically as PNG."""
    atomic_write_bytes(path, generalisation_figure(report))


def generalisation_figure(report: dict) -> bytes:
    """PNG bytes of :func:`plot_generalisation`'s chart (for embedding in a report)."""
    rows = report.get("results") if isinstance(report, dict) else None
    if not rows:
        raise ValueError("expected the dict returned by generalisation_report with result rows")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    value = {(r["method"], r["shift"]): r["psnr"] for r in rows}
    fig = Figure(figsize=(max(6.0, 1.1 * len(shifts) + 2), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(shifts))]
        ax.bar(xs, [value.get((m, s), float("nan")) for s in shifts], width, label=m)
    ax.set_xticks(range(len(shifts)))
    ax.set_xticklabels(shifts, rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Reconstruction quality under distribution shift")
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()
