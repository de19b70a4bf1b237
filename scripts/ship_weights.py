"""Copy a training run's weights into the package as a shipped model.

    python scripts/ship_weights.py runs/lpd-ellipses lpd-ellipses [--which best] [--note TEXT]

Copies RUN/best.safetensors (or final) to src/tomolearn/weights/NAME.safetensors and its
model card beside it, adding the run's learning curve (validation.csv, and the training
loss every 250 steps from train.csv) and an optional note.  The card's SHA-256 covers the
weights file, which is copied unchanged.
"""

import argparse
import csv
import json
import shutil
from pathlib import Path

from tomolearn.files import atomic_write_bytes
from tomolearn.weights import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--which", choices=["best", "final"], default="best")
    parser.add_argument("--note", default=None)
    args = parser.parse_args()
    src = args.run / f"{args.which}.safetensors"
    _, card = load_weights(src)  # checks the hash
    with open(args.run / "validation.csv", newline="") as f:
        card["validation_history"] = [
            {"step": int(r["step"]), "samples": int(r["samples"]), "psnr": float(r["psnr"]),
             "ssim": float(r["ssim"])} for r in csv.DictReader(f)]
    with open(args.run / "train.csv", newline="") as f:
        card["training_loss"] = [
            {"step": int(r["step"]), "loss": float(r["loss"]), "seconds": float(r["seconds"])}
            for r in csv.DictReader(f) if int(r["step"]) % 250 == 0]
    if args.note:
        card["note"] = args.note
    out = Path(__file__).resolve().parents[1] / "src" / "tomolearn" / "weights"
    out.mkdir(exist_ok=True)
    shutil.copyfile(src, out / f"{args.name}.safetensors")
    atomic_write_bytes(out / f"{args.name}.json",
                       (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    load_weights(out / f"{args.name}.safetensors")
    print(f"shipped {src} as {out / args.name}.safetensors "
          f"(validation PSNR {card['validation'].get('psnr', float('nan')):.2f} dB)")


if __name__ == "__main__":
    main()
