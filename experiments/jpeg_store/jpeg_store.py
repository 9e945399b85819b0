"""What a JPEG store costs in accuracy: the CPU proxy of the paper's recipe trained on a raw store and on a JPEG
store of the same images, several seeds, the difference against the seed noise; and what it changes in pixels.

    python experiments/jpeg_store/jpeg_store.py                  # 50,000 images, 4 epochs (+proxy=cifar10), seeds 0-3
    python experiments/jpeg_store/jpeg_store.py quick            # 10,000 images, 1 epoch, seed 0 (a few minutes)
    python experiments/jpeg_store/jpeg_store.py seeds=0,1 quality=75

1. Two stores of CIFAR-10 at 72 px (``+proxy=cifar10``'s size; experiments/studies.py makes them from
   ../shared/data): ``format=raw`` and ``format=jpeg quality=Q`` (default 90, alexnet-prepare's default), each with
   its own mean image and RGB PCA (the JPEG store's of its decoded pixels).
2. Pixels: the PSNR of every decoded JPEG row against its raw row (mean, 5th percentile, minimum), bytes per image.
3. Each run is ``train.py +experiment=paper +proxy=cifar10 data.root=<store> seed=S`` in
   logs/jpeg_store/runs/<images>-<format>-s<S>; a killed one resumes from its last checkpoint, a finished one is read
   back. Its numbers: test top-1 and top-5 error of the last epoch's weights on the 10-crop view, from metrics.csv.
4. The effect of the JPEG store: mean(jpeg) - mean(raw) in points, its standard error over seeds (Welch), and
   whether it is beyond 2 SE. Writes <out_dir>/results.json.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import studies  # noqa: E402

STUDY = {"images": 50000, "epochs": 4, "seeds": "0,1,2,3", "quality": 90, "out_dir": str(HERE),
         "log_dir": str(ROOT / "logs")}
QUICK = {"images": 10000, "epochs": 1, "seeds": "0", "out_dir": str(ROOT / "logs" / "jpeg_store-quick")}
KEYS = ("test/top1_err_10crop", "test/top5_err_10crop", "test/top1_err")


def run(opts: dict, fmt: str, seed: int) -> dict:
    rid = f"{opts['images']}-{opts['epochs']}ep-{fmt}-s{seed}"
    folder = studies.folder(opts["log_dir"], "paper", rid)
    if studies.record(folder).get("status") != "finished":
        code = studies.launch("paper", rid, ["+proxy=cifar10", f"data.root={opts['stores'][fmt]}", f"seed={seed}",
                                             f"trainer.max_epochs={opts['epochs']}", "logger=csv_only"],
                              opts["log_dir"])
        if code != 0:
            r = studies.record(folder)
            sys.exit(f"error: {rid} failed (exit {code}, {r.get('status')}: {r.get('reason', 'see its log above')})")
    rec, errors = studies.record(folder), studies.test_errors(folder, KEYS)
    return {"format": fmt, "seed": seed, "run_id": rid, "wall_s": rec.get("wall_s"), **errors}


def pixels(raw: Path, jpeg: Path) -> dict:
    """PSNR of every decoded JPEG row against the raw row, both splits; bytes per image of each store."""
    from alexnet_lit.data.jpeg import psnr
    from alexnet_lit.data.store import PreparedSplit

    out: dict = {}
    for store, name in ((raw, "raw"), (jpeg, "jpeg")):
        m = json.loads((store / "manifest.json").read_text())["splits"]
        out[f"{name}_bytes_per_image"] = sum(s["bytes"] for s in m.values()) / sum(s["images"] for s in m.values())
    values = []
    for split in ("train", "val"):
        a, b = PreparedSplit(raw, split), PreparedSplit(jpeg, split)
        values += [psnr(np.asarray(a.image(i)), np.asarray(b.image(i))) for i in range(len(a))]
    v = np.asarray(values)
    return {**out, "ratio": out["raw_bytes_per_image"] / out["jpeg_bytes_per_image"], "images": len(v),
            "psnr_db": {"mean": float(v.mean()), "p5": float(np.percentile(v, 5)), "min": float(v.min())}}


def summary(runs: list[dict]) -> dict:
    out: dict = {}
    for key in KEYS[:2]:
        by = {f: [r[key] for r in runs if r["format"] == f] for f in ("raw", "jpeg")}
        s = {f: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None, "values": v}
             for f, v in by.items()}
        se = math.sqrt(sum(s[f]["std"] ** 2 / len(by[f]) for f in by)) if s["raw"]["std"] is not None else None
        effect = s["jpeg"]["mean"] - s["raw"]["mean"]
        verdict = "no noise estimate (1 seed)" if not se else \
            ("beyond noise" if abs(effect) > 2 * se else "within noise") + f" ({abs(effect) / se:.1f} SE)"
        out[key] = {**s, "jpeg_minus_raw": effect, "se": se, "verdict": verdict}
    return out


def main(argv: list[str]) -> None:
    from alexnet_lit.machine import cpu_name

    words = [a for a in argv if "=" not in a]
    given = dict(a.split("=", 1) for a in argv if "=" in a)
    bad = [w for w in words if w != "quick"] + sorted(set(given) - set(STUDY))
    if bad:
        studies.user_error(f"unknown argument {bad[0]!r}: give quick or {', '.join(k + '=' for k in STUDY)}")
    opts = {**STUDY, **(QUICK if "quick" in words else {}), **given}
    images, quality = int(opts["images"]), int(opts["quality"])
    if images % 10 or not 0 < images <= 50000 or not 1 <= quality <= 100:
        studies.user_error(f"images={images} quality={quality}: give a multiple of 10 up to 50000 and 1..100")
    per_class = None if images == 50000 else images // 10
    opts["stores"] = {"raw": studies.store(72, per_class), "jpeg": studies.store(72, per_class, "jpeg", quality)}
    machine = f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"
    print(f"machine: {machine}", flush=True)
    t0 = time.monotonic()
    pix = pixels(opts["stores"]["raw"], opts["stores"]["jpeg"])
    print(f"pixels: PSNR {pix['psnr_db']['mean']:.1f} dB mean, {pix['psnr_db']['min']:.1f} min over {pix['images']} "
          f"images; {pix['raw_bytes_per_image']:.0f} vs {pix['jpeg_bytes_per_image']:.0f} bytes an image "
          f"({pix['ratio']:.1f}x)", flush=True)
    runs = [run(opts, fmt, int(s)) for s in str(opts["seeds"]).split(",") for fmt in ("raw", "jpeg")]
    results = {"protocol": {k: opts[k] for k in ("images", "epochs", "seeds", "quality")}, "pixels": pix,
               "runs": runs, "summary": summary(runs), "machine": machine, "date": time.strftime("%Y-%m-%d"),
               "study_s": time.monotonic() - t0,
               "command": "python experiments/jpeg_store/jpeg_store.py " + " ".join(argv)}
    out = Path(opts["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    s = results["summary"][KEYS[0]]
    print(f"10-crop test top-1 error: raw {s['raw']['mean']:.2f}%, jpeg q{quality} {s['jpeg']['mean']:.2f}%: "
          f"{s['jpeg_minus_raw']:+.2f} points, {s['verdict']}; {out / 'results.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
