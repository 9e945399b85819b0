"""Section 3.3 on CIFAR-10: cuda-convnet's layers-conv-local-11pct net with and without its two response-
normalization layers ("13% test error without normalization and 11% with").

    python experiments/lrn_cifar10/lrn_cifar10.py            # the protocol: 50,000 images, 520 epochs, seeds 0,1,2
    python experiments/lrn_cifar10/lrn_cifar10.py quick      # 10,000 images (1,000 a class), 12 epochs, seed 0
    python experiments/lrn_cifar10/lrn_cifar10.py seeds=0,1 epochs=60   # a shorter schedule: the same steps, scaled

1. Each run is ``train.py +experiment=lrn_cifar10 model.lrn.enabled=<on|off> seed=S`` (conf/experiment/
   lrn_cifar10.yaml: the layer-params file's protocol) in logs/lrn_cifar10/runs/<images>-<epochs>ep-lrn<on|off>-s<S>;
   a killed one resumes from its last checkpoint, a finished one is read back.
2. ``epochs=N`` scales cuda-convnet's schedule (500 epochs at epsW 0.001, 10 at 0.0001, 10 at 0.00001) to N:
   lowered by 10 at N - 2 and again at N - 1 when N < 520.
3. Its numbers: test top-1 error of the last epoch's weights on the 10-view test (cuda-convnet's --multiview-test)
   and on the centre crop, from metrics.csv. The effect of LRN: mean(off) - mean(on) in points, its standard error
   over seeds, and 2 SE (the smallest effect these seeds resolve). Writes <out_dir>/results.json.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import cifar10  # noqa: E402

STUDY = {"images": 50000, "epochs": 520, "seeds": "0,1,2", "out_dir": str(HERE), "log_dir": str(ROOT / "logs"),
         "extra": ""}
QUICK = {"images": 10000, "epochs": 12, "seeds": "0", "out_dir": str(ROOT / "logs" / "lrn_cifar10-quick")}
PAPER = {"on": 11.0, "off": 13.0}  # section 3.3, % test error


def schedule(epochs: int) -> list[str]:
    milestones = [500, 510] if epochs >= 520 else [epochs - 2, epochs - 1]
    return [f"trainer.max_epochs={epochs}", f"model.scheduler.milestones=[{milestones[0]},{milestones[1]}]"]


def test_errors(run_dir: Path) -> dict[str, float]:
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: 100 * float(r[k]) for r in rows for k in ("test/top1_err_10crop", "test/top1_err") if r.get(k)}


def run(opts: dict, lrn: str, seed: int) -> dict:
    rid = f"{opts['images']}-{opts['epochs']}ep-lrn{lrn}-s{seed}" + cifar10.tag(opts["extra"])
    folder = cifar10.folder(opts["log_dir"], "lrn_cifar10", rid)
    if cifar10.record(folder).get("status") != "finished":
        code = cifar10.launch("lrn_cifar10", rid, [f"model.lrn.enabled={lrn == 'on'}", f"seed={seed}",
                                                   f"data.root={opts['store']}", "logger=csv_only",
                                                   *schedule(int(opts["epochs"])), *opts["extra"].split()],
                              opts["log_dir"])
        if code != 0:
            r = cifar10.record(folder)
            sys.exit(f"error: {rid} failed (exit {code}, {r.get('status')}: {r.get('reason', 'see its log above')})")
    rec = cifar10.record(folder)
    return {"lrn": lrn, "seed": seed, "run_id": rid, "wall_s": rec.get("wall_s"), **test_errors(folder)}


def summary(runs: list[dict]) -> dict:
    out: dict = {}
    for lrn in ("on", "off"):
        v = [r["test/top1_err_10crop"] for r in runs if r["lrn"] == lrn]
        out[lrn] = {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None, "n": len(v),
                    "values": v, "paper": PAPER[lrn]}
    on, off = out["on"], out["off"]
    se = math.sqrt(on["std"] ** 2 / on["n"] + off["std"] ** 2 / off["n"]) if on["std"] is not None else None
    effect = off["mean"] - on["mean"]
    out["effect"] = {"points": effect, "se": se, "resolvable": 2 * se if se else None, "paper": 2.0,
                     "verdict": "no noise estimate (1 seed)" if se is None else
                     ("beyond noise" if abs(effect) > 2 * se else "within noise") + f" ({abs(effect) / se:.1f} SE)"}
    return out


def main(argv: list[str]) -> None:
    from alexnet_lit.machine import cpu_name

    words = [a for a in argv if "=" not in a]
    given = dict(a.split("=", 1) for a in argv if "=" in a)
    bad = [w for w in words if w != "quick"] + sorted(set(given) - set(STUDY))
    if bad:
        sys.exit(f"error: unknown argument {bad[0]!r}: give quick or {', '.join(k + '=' for k in STUDY)}")
    opts = {**STUDY, **(QUICK if "quick" in words else {}), **given}
    images, epochs = int(opts["images"]), int(opts["epochs"])
    if images % 10 or not 0 < images <= 50000 or epochs < 3:
        sys.exit(f"error: images={images} epochs={epochs}: give a multiple of 10 up to 50000 and at least 3 epochs")
    opts["store"] = str(cifar10.store(32, None if images == 50000 else images // 10))
    machine = f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"
    print(f"machine: {machine}", flush=True)
    t0 = time.monotonic()
    runs = [run(opts, lrn, int(s)) for s in str(opts["seeds"]).split(",") for lrn in ("on", "off")]
    results = {"protocol": {k: opts[k] for k in ("images", "epochs", "seeds")}, "runs": runs,
               "summary": summary(runs), "machine": machine, "date": time.strftime("%Y-%m-%d"),
               "study_s": time.monotonic() - t0,
               "command": "python experiments/lrn_cifar10/lrn_cifar10.py " + " ".join(argv)}
    out = Path(opts["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    s = results["summary"]
    print(f"10-view test error: LRN on {s['on']['mean']:.2f}% (paper 11), off {s['off']['mean']:.2f}% (paper 13); "
          f"effect {s['effect']['points']:+.2f} points, {s['effect']['verdict']}; {out / 'results.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
