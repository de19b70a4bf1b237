#!/usr/bin/env python
"""Try the bad inputs of docs/reliability.md and print their table (Markdown).

    python scripts/reliability_table.py            # about a minute on two cores

Each case runs ``tomolearn ...`` in a fresh temporary folder (prepared with the files the
case needs) and records the exit status, the first line of stderr and the files left
behind besides the prepared ones.  Nothing is timed.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

TINY = ("model: {name: lgd, params: {n_iter: 2, channels: 4}}\n"
        "data: {simulation: {image_size: 24, n_angles: 6, n_detectors: 35, fine_size: 48},"
        " train_size: 8, validation_size: 4}\n"
        "train: {steps: 1, batch_size: 4, val_every: 1, checkpoint_every: 1, log_every: 1,"
        " tensorboard: false}\n")


class _Payload:
    """Unpickling this writes ``PWNED``: the proof that a checkpoint ran code."""

    def __reduce__(self):
        return (Path.write_text, (Path("PWNED"), "code ran"))


def _write(name, data):
    def prepare(d: Path):
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, np.ndarray):
            np.save(path, data)
        else:
            path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return prepare


def _malicious_run(d: Path):
    run = d / "run"
    run.mkdir()
    torch.save({"step": _Payload()}, run / "checkpoint.pt")  # a torch.save file whose pickle runs code
    (d / "c.yaml").write_text(TINY)


def _card(change):
    def prepare(d: Path):
        from tomolearn.weights import SHIPPED
        for suffix in (".safetensors", ".json"):
            (d / f"m{suffix}").write_bytes((SHIPPED / f"lpd-ellipses{suffix}").read_bytes())
        card = json.loads((d / "m.json").read_text())
        (d / "m.json").write_text(json.dumps(change(card)))
        np.save(d / "sino.npy", np.zeros((30, 183), np.float32))
    return prepare


def _with_image_size_64(card):
    card["data"]["simulation"]["image_size"] = 64
    return card


CASES = [  # (what, prepare, argv)
    ("crafted pickle as a checkpoint", _malicious_run,
     ["train", "c.yaml", "--out", "run", "--resume"]),
    ("model card says image_size 64 (weights are 128)", _card(_with_image_size_64),
     ["reconstruct", "--input", "sino.npy", "--weights", "m.safetensors", "--out", "r.npy"]),
    ("model card is a JSON list", _card(lambda c: [c]),
     ["reconstruct", "--input", "sino.npy", "--weights", "m.safetensors", "--out", "r.npy"]),
    ("empty training config", _write("c.yaml", ""), ["train", "c.yaml", "--out", "run"]),
    ("grad_clip: -1", _write("c.yaml", TINY), ["train", "c.yaml", "--out", "run", "--set",
                                               "train.grad_clip=-1"]),
    ("val_every: 0", _write("c.yaml", TINY), ["train", "c.yaml", "--out", "run", "--set",
                                              "train.val_every=0"]),
    ("betas: [0.9]", _write("c.yaml", TINY), ["train", "c.yaml", "--out", "run", "--set",
                                              "train.betas=[0.9]"]),
    ("threads: 0", _write("c.yaml", TINY), ["train", "c.yaml", "--out", "run", "--set",
                                            "train.threads=0"]),
    ("--max-steps -1", _write("c.yaml", TINY), ["train", "c.yaml", "--out", "run",
                                                "--max-steps", "-1"]),
    ("--json onto an existing file", _write("info.json", "{}"), ["info", "--json", "info.json"]),
    ("output folder missing", None, ["info", "--json", "no/such/dir/info.json"]),
    ("data generate to a .npy name", None, ["data", "generate", "ellipses", "--n", "2", "--out",
                                            "x.npy"]),
    ("--n 1e12 samples", None, ["data", "generate", "ellipses", "--n", "1000000000000", "--out",
                                "x.h5"]),
    ("--n-images 1e8", None, ["demo", "--n-images", "100000000"]),
    ("--angles 1e8", None, ["demo", "--angles", "100000000"]),
    ("--device bogus", None, ["benchmark", "operators", "--device", "bogus"]),
    ("--device cuda:7", None, ["benchmark", "operators", "--device", "cuda:7"]),
    ("--repeats 0", None, ["benchmark", "operators", "--repeats", "0"]),
    ("--batch-size 0", None, ["benchmark", "ct", "--batch-size", "0"]),
    ("corrupt .h5", _write("bad.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
     ["reconstruct", "--input", "bad.h5", "--method", "fbp", "--out", "r.npy"]),
    ("corrupt .npy", _write("bad.npy", b"\x93NUMPY\x01\x00garbage"),
     ["reconstruct", "--input", "bad.npy", "--method", "fbp", "--out", "r.npy"]),
    ("data of 1e38 (finite, overflows)", _write("big.npy", np.full((30, 183), 1e38, np.float32)),
     ["reconstruct", "--input", "big.npy", "--method", "fbp", "--out", "r.npy"]),
    ("a 1-D .npy", _write("v.npy", np.zeros(7, np.float32)),
     ["reconstruct", "--input", "v.npy", "--method", "fbp", "--out", "r.npy"]),
]


def run_case(what, prepare, argv):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if prepare is not None:
            prepare(d)
        before = {p.relative_to(d) for p in d.rglob("*")}
        proc = subprocess.run([sys.executable, "-m", "tomolearn.cli", *argv], cwd=d, env=ENV,
                              capture_output=True, text=True, timeout=600)
        left = sorted(str(p.relative_to(d)) for p in d.rglob("*")
                      if p.relative_to(d) not in before and p.is_file())
        lines = proc.stderr.strip().splitlines()
        return {"input": what, "command": "tomolearn " + " ".join(argv),
                "exit": proc.returncode, "message": lines[-1] if lines else "",
                "stderr_lines": len(lines), "traceback": "Traceback" in proc.stderr,
                "files_left": left}


def main():
    rows = [run_case(*case) for case in CASES]
    print("| input | command | exit | message | files left |")
    print("|---|---|---|---|---|")
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        print(f"| {r['input']} | `{r['command']}` | {r['exit']} | {msg} | "
              f"{', '.join(r['files_left']) or 'none'} |")
    bad = [r for r in rows if r["exit"] == 0 or r["traceback"]]
    if bad:
        print(f"\n{len(bad)} case(s) exited 0 or printed a traceback: "
              + ", ".join(r["input"] for r in bad), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
