"""The CPU-sized ablation study, end to end: data, the sweep, the report (make ablations).

    python experiments/ablations.py                       # all three steps (74 min on 2 cores); logs/ablations-report
    python experiments/ablations.py out_dir=experiments/ablations    # where the committed report was written
    python experiments/ablations.py prepare | sweep | report          # one step (report: on the finished sweep)
    python experiments/ablations.py sweep seeds=0,1 epochs=3          # a smaller study

Steps:
1. prepare: the 72 px store from ../shared/data (experiments/cifar10.py: ``python experiments/cifar10.py 72``;
   skipped when complete).
2. sweep: ``train.py +sweep=ablations_cifar10`` (conf/sweep/ablations_cifar10.yaml: the paper's recipe and 7
   ablations on conf/proxy/cifar10.yaml, seeds 0, 1, 2) into logs/multiruns/<run_id> (default
   ablations-cifar10-<date>-<time>: each study its own folder; an interrupted one continues with
   ``python train.py +sweep=ablations_cifar10 run_id=<it> ckpt_path=last``).
3. report: ``alexnet-report`` on that sweep folder (alone: the newest study, or ``run_id=``).

Each step prints its wall time and the machine (CPU name and cores): the study's budget is measured, not assumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from alexnet_lit.machine import cpu_name

sys.path.insert(0, str(Path(__file__).resolve().parent))
import studies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def step(name: str, cmd: list[str]) -> float:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t = time.monotonic()
    code = subprocess.call(cmd, cwd=ROOT)
    took = time.monotonic() - t
    print(f"== {name}: {took / 60:.1f} min, exit {code}", flush=True)
    if code != 0:
        sys.exit(code)
    return took


def prepare() -> float:
    t = time.monotonic()
    studies.store(72)
    return time.monotonic() - t


def main(argv: list[str]) -> None:
    steps = [a for a in argv if "=" not in a] or ["prepare", "sweep", "report"]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    run_id = opts.get("run_id")
    if run_id is None and "sweep" not in steps:  # the report of the newest study
        found = sorted((ROOT / "logs" / "multiruns").glob("ablations-cifar10-*"))
        run_id = found[-1].name if found else None
        if run_id is None:
            studies.user_error("no study in logs/multiruns (ablations-cifar10-*): run the sweep first, or give run_id=")
    run_id = run_id or f"ablations-cifar10-{time.strftime('%Y%m%d-%H%M%S')}"  # a new folder for each study
    sweep_dir = ROOT / "logs" / "multiruns" / run_id
    out_dir = opts.get("out_dir", str(ROOT / "logs" / "ablations-report"))
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores", flush=True)
    times = {}
    if "prepare" in steps:
        times["prepare"] = prepare()
    if "sweep" in steps:
        extra = [f"seed={opts['seeds']}"] if "seeds" in opts else []
        extra += [f"trainer.max_epochs={opts['epochs']}"] if "epochs" in opts else []
        times["sweep"] = step("sweep", [sys.executable, "train.py", "+sweep=ablations_cifar10", f"run_id={run_id}",
                                        *extra])
    if "report" in steps:
        times["report"] = step("report", [str(BIN / "alexnet-report"), f"runs={sweep_dir}", f"out_dir={out_dir}"])
    print("took: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) +
          f"; total {sum(times.values()) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
