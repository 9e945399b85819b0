"""Section 3.3 on CIFAR-10: cuda-convnet's layers-conv-local-11pct net with and without its two response-
normalization layers ("13% test error without normalization and 11% with").

    python experiments/lrn_cifar10/lrn_cifar10.py            # the protocol: 50,000 images, 520 epochs, seeds 0,1,2
    python experiments/lrn_cifar10/lrn_cifar10.py quick      # 10,000 images (1,000 a class), 12 epochs, seed 0
    python experiments/lrn_cifar10/lrn_cifar10.py seeds=0,1 epochs=60   # a shorter schedule: the same steps, scaled
    python experiments/lrn_cifar10/lrn_cifar10.py cost       # a training step with and without LRN; the budgets

1. Each run is ``train.py +experiment=lrn_cifar10 model.lrn.enabled=<on|off> seed=S`` (conf/experiment/
   lrn_cifar10.yaml: the layer-params file's protocol) in logs/lrn_cifar10/runs/<images>-<epochs>ep-lrn<on|off>-s<S>;
   a killed one resumes from its last checkpoint, a finished one is read back.
2. ``epochs=N`` scales cuda-convnet's schedule (500 epochs at epsW 0.001, 10 at 0.0001, 10 at 0.00001) to N:
   lowered by 10 at N - 2 and again at N - 1 when N < 520.
3. Its numbers: test top-1 error of the last epoch's weights on the 10-view test (cuda-convnet's --multiview-test)
   and on the centre crop, from metrics.csv. The effect of LRN: mean(off) - mean(on) in points, its standard error
   over seeds, and 2 SE (the smallest effect these seeds resolve). Writes <out_dir>/results.json.
4. ``cost``: the net's training step (forward, loss, backward, SGD step; batch 128 of 24 px crops, the experiment's
   precision and memory format) with LRN on and off in alternating pairs, the median of each; from it the hours of
   one run of the full schedule (520 epochs of 50,000 images) and of this study on this machine. Writes
   <out_dir>/cost.json.
"""

from __future__ import annotations

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
import studies  # noqa: E402

STUDY = {"images": 50000, "epochs": 520, "seeds": "0,1,2", "out_dir": str(HERE), "log_dir": str(ROOT / "logs"),
         "extra": ""}
QUICK = {"images": 10000, "epochs": 12, "seeds": "0", "out_dir": str(ROOT / "logs" / "lrn_cifar10-quick")}
PAPER = {"on": 11.0, "off": 13.0}  # section 3.3, % test error


def schedule(epochs: int) -> list[str]:
    milestones = [500, 510] if epochs >= 520 else [epochs - 2, epochs - 1]
    return [f"trainer.max_epochs={epochs}", f"model.scheduler.milestones=[{milestones[0]},{milestones[1]}]"]


def run(opts: dict, lrn: str, seed: int) -> dict:
    rid = f"{opts['images']}-{opts['epochs']}ep-lrn{lrn}-s{seed}" + studies.tag(opts["extra"])
    folder = studies.folder(opts["log_dir"], "lrn_cifar10", rid)
    if studies.record(folder).get("status") != "finished":
        code = studies.launch("lrn_cifar10", rid, [f"model.lrn.enabled={lrn == 'on'}", f"seed={seed}",
                                                   f"data.root={opts['store']}", "logger=csv_only",
                                                   *schedule(int(opts["epochs"])), *opts["extra"].split()],
                              opts["log_dir"])
        if code != 0:
            r = studies.record(folder)
            sys.exit(f"error: {rid} failed (exit {code}, {r.get('status')}: {r.get('reason', 'see its log above')})")
    rec, errors = studies.record(folder), studies.test_errors(folder, ("test/top1_err_10crop", "test/top1_err"))
    return {"lrn": lrn, "seed": seed, "run_id": rid, "wall_s": rec.get("wall_s"), **errors}


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


def net(lrn: bool):
    """+experiment=lrn_cifar10's net with its two cmrnorm layers or without them, in the experiment's memory format."""
    import torch
    from hydra import compose, initialize_config_dir

    from alexnet_lit import models
    from alexnet_lit.config import ModelConfig, build, plain

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["+experiment=lrn_cifar10", f"model.lrn.enabled={lrn}"])
    fmt = torch.channels_last if cfg.model.channels_last else torch.contiguous_format
    return models.build(build(ModelConfig, plain(cfg.model), "model")).to(memory_format=fmt), fmt


def step_seconds(lrn: bool, steps: int = 6, batch: int = 128) -> list[float]:
    """Seconds per training step (forward, loss, backward, SGD step) after two warm-up steps."""
    import torch
    from torch.nn import functional as F

    model, fmt = net(lrn)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.randn(batch, 3, 24, 24).mul(60).to(memory_format=fmt)  # the scale of raw pixels minus the mean
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return times


def cost(opts: dict) -> dict:
    """LRN on / off step times in alternating pairs (a shared machine drifts), and the budgets they imply."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    pairs = [(statistics.median(step_seconds(True)), statistics.median(step_seconds(False))) for _ in range(3)]
    on, off = (statistics.median(p[i] for p in pairs) for i in (0, 1))
    per_epoch = {k: 50000 / 128 * v for k, v in (("on", on), ("off", off))}  # training steps only (no test)
    full = {k: 520 * v / 3600 for k, v in per_epoch.items()}
    return {"step_s": {"on": on, "off": off}, "img_s": {"on": 128 / on, "off": 128 / off},
            "lrn_vs_no_lrn": off / on, "pairs": pairs, "epoch_s": per_epoch,
            "full_run_h": full, "full_study_h": {"one seed": full["on"] + full["off"],
                                                 "three seeds": 3 * (full["on"] + full["off"])}}


def main(argv: list[str]) -> None:
    from alexnet_lit.machine import cpu_name

    words = [a for a in argv if "=" not in a]
    given = dict(a.split("=", 1) for a in argv if "=" in a)
    bad = [w for w in words if w not in ("quick", "cost")] + sorted(set(given) - set(STUDY))
    if bad:
        studies.user_error(f"unknown argument {bad[0]!r}: give quick, cost or {', '.join(k + '=' for k in STUDY)}")
    if "cost" in words:
        machine = f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"
        c = {"machine": machine, "date": time.strftime("%Y-%m-%d"), **cost({})}
        out = Path({**STUDY, **given}["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "cost.json").write_text(json.dumps(c, indent=1))
        print(f"machine: {machine}\nstep (batch 128, 24 px): LRN on {c['step_s']['on'] * 1e3:.0f} ms "
              f"({c['img_s']['on']:.0f} img/s), off {c['step_s']['off'] * 1e3:.0f} ms ({c['img_s']['off']:.0f} img/s): "
              f"lrn_vs_no_lrn={c['lrn_vs_no_lrn']:.2f}\none run of the full schedule (520 epochs of 50,000): "
              f"{c['full_run_h']['on']:.0f} h on, {c['full_run_h']['off']:.0f} h off; the study with 3 seeds "
              f"{c['full_study_h']['three seeds']:.0f} h; {out / 'cost.json'}")
        return
    opts = {**STUDY, **(QUICK if "quick" in words else {}), **given}
    images, epochs = int(opts["images"]), int(opts["epochs"])
    if images % 10 or not 0 < images <= 50000 or epochs < 3:
        studies.user_error(f"images={images} epochs={epochs}: give a multiple of 10 up to 50000 and at least 3 epochs")
    opts["store"] = str(studies.store(32, None if images == 50000 else images // 10))
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
