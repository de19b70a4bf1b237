"""Speed of the learned networks: inference per image (float32 / bfloat16, NCHW /
channels-last), the operator's share of a forward pass, and training throughput.

On a CPU without native bfloat16 (:func:`tomolearn.hardware.cpu_has_native_bf16`) the
bfloat16 columns are null with a note, not timed: emulated bfloat16 is about ten times
slower than float32 (it would dominate the benchmark's run time), and tomolearn never
takes that path there (training and the shipped methods' ``amp`` fall back to float32),
so the number would describe nothing a user runs.  Training throughput is then timed in
float32, as training runs on such a CPU (``train_dtype`` says which).
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional

import torch

from .. import hardware
from ..data import ellipses_benchmark
from ..modalities.ct.speed import median_seconds
from ..weights import build_model

__all__ = ["SPEED_ARCHITECTURES", "learned_speed", "format_speed_table"]


#: The shipped architectures, as :func:`learned_speed` builds them.
SPEED_ARCHITECTURES = {"fbpconvnet": {"channels": 16, "depth": 4}, "lgd": {}, "lpd": {}}


def learned_speed(methods=tuple(SPEED_ARCHITECTURES), batch: int = 16, repeats: int = 5,
                  train_batch: int = 8, progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Inference and training speed of the learned methods on the ellipses geometry (CPU or CUDA).

    For each method: milliseconds per image at ``batch`` in float32 and in
    bfloat16 autocast, each with the default (NCHW) and the channels-last
    memory format; the share of the forward pass spent in the operator (its
    ``_forward`` / ``_adjoint`` calls timed in place); and the training
    throughput (samples/s of forward + backward + Adam step at
    ``train_batch``, bfloat16 autocast, as the shipped runs trained).
    Untrained weights of the shipped architectures are used (speed does not
    depend on the values).  Medians of ``repeats``.

    On a CPU without native bfloat16 the ``bf16_*`` values are None,
    ``note`` says why, and training is timed in float32 (``train_dtype``).
    """
    say = progress or (lambda msg: None)
    dataset = ellipses_benchmark("test", size=max(batch, train_batch))
    op = dataset.operator()
    y, x = dataset.batch(range(max(batch, train_batch)))
    bf16 = hardware.cpu_has_native_bf16()
    note = None if bf16 else ("bf16 not timed: this CPU has no native bfloat16 (no avx512_bf16 "
                              "or amx_bf16), where bfloat16 autocast is emulated and about 10x "
                              "slower than float32; tomolearn uses float32 here")
    rows = []
    for method in methods:
        model = build_model(method, op, **SPEED_ARCHITECTURES[method]).eval()
        row = {"method": method, "batch": batch, "n_parameters": model.n_parameters,
               "torch_threads": torch.get_num_threads(), "bf16_native": bf16,
               "train_dtype": "bfloat16" if bf16 else "float32", "note": note}
        for amp in (False, True):
            for fmt in ("nchw", "channels_last"):
                key = f"{'bf16' if amp else 'fp32'}_{fmt}_ms"
                if amp and not bf16:
                    row[key] = None
                    continue
                model = model.to(memory_format=torch.channels_last if fmt == "channels_last"
                                 else torch.contiguous_format)

                def run():
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                        model(y[:batch])

                run()
                row[key] = median_seconds(run, repeats) * 1e3 / batch
                say(f"{method} {key}: {row[key]:.1f} ms/image")
        # operator share of a float32 forward pass
        spent = [0.0]
        fwd, adj = op._forward, op._adjoint

        def timed(fn):
            def call(z):
                t0 = time.perf_counter()
                out = fn(z)
                spent[0] += time.perf_counter() - t0
                return out
            return call

        op._forward, op._adjoint = timed(fwd), timed(adj)
        try:
            model = model.to(memory_format=torch.contiguous_format)
            with torch.no_grad():
                t0 = time.perf_counter()
                model(y[:batch])
                total = time.perf_counter() - t0
        finally:
            del op._forward, op._adjoint
        row["operator_share"] = spent[0] / total
        # training throughput
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)

        def step():
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(y[:train_batch])
            torch.mean((out.float() - x[:train_batch]) ** 2).backward()
            opt.step()

        step()
        row["train_samples_per_s"] = train_batch / median_seconds(step, max(2, repeats // 2))
        say(f"{method} training: {row['train_samples_per_s']:.1f} samples/s")
        rows.append(row)
    return rows


def _ms(value) -> str:
    return f"{'-':>9}" if value is None else f"{value:>9.1f}"


def format_speed_table(rows: List[dict]) -> str:
    """Plain-text table of :func:`learned_speed` rows (milliseconds per image, samples/s)."""
    head = (f"{'network':<12}{'params':>8}{'batch':>7}{'fp32 ms':>9}{'fp32 CL':>9}{'bf16 ms':>9}"
            f"{'bf16 CL':>9}{'operator':>10}{'train/s':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<12}{r['n_parameters'] / 1e3:>7.0f}k{r['batch']:>7}"
                     f"{_ms(r['fp32_nchw_ms'])}{_ms(r['fp32_channels_last_ms'])}"
                     f"{_ms(r['bf16_nchw_ms'])}{_ms(r['bf16_channels_last_ms'])}"
                     f"{100 * r['operator_share']:>9.0f}%{r['train_samples_per_s']:>9.1f}")
    train_dtype = "bf16" if not rows or rows[0].get("train_dtype", "bfloat16") == "bfloat16" \
        else "fp32"
    lines.append("ms: inference milliseconds per image (median); CL: channels-last weights; operator: "
                 "share of a float32 forward pass spent in the ray transform; train/s: training "
                 f"samples per second (batch 8, {train_dtype}); torch threads "
                 f"{rows[0]['torch_threads'] if rows else '-'}")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    lines += notes
    return "\n".join(lines)
