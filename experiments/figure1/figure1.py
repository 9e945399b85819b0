"""Figure 1 of the paper (section 3.1) by cuda-convnet's recipe: the four-layer net on CIFAR-10 reaches 25% training
error six times faster with ReLUs than with tanh units, each at its own fastest learning rate.

    python experiments/figure1/figure1.py              # the study: 50,000 images, relu, tanh, lecun_tanh, 3 seeds
    python experiments/figure1/figure1.py quick        # 10,000 images (1,000 a class), relu and tanh, 1 seed, 15 epochs
    python experiments/figure1/figure1.py net=cifar_19pct activations=relu,tanh seeds=0   # the 19pct row: cifar_19pct/
    python experiments/figure1/figure1.py plot         # redraw figure1.png from results.json
    python experiments/figure1/figure1.py park         # after stopping it (SIGTERM): its unfinished runs, to commit

Every run is ``train.py +experiment=figure1`` (conf/experiment/figure1.yaml: cuda-convnet's layers-80sec, its initW
with zero biases, raw pixels minus the mean image, epsB = 2 epsW, momentum 0.9, no regularization, batch 128, stop
below 25% training error) in its own folder, logs/figure1/runs/f1-<images>-<net>-<activation>-lr<lr>-s<seed>; the
epochs come from its metrics.csv (train/top1_err: the epoch's mean over its minibatches, as cuda-convnet printed
it). An interrupted study continues where it stopped: finished runs are read back, a killed one resumes from its
last checkpoint, a capped one is extended (``ckpt_path=last`` with more epochs). logs/ is not committed: a run whose
folder is gone is taken from the committed results.json when it has what the study needs (reached 25%, diverged,
or enough epochs), so the study also continues on another machine; a run cut short is parked in
experiments/figure1/parked/ (``park``, after a SIGTERM to the study) and resumed from there.

"The learning rates for each network were chosen independently to make training as fast as possible":
1. Per activation, seed 0: start at cuda-convnet's epsW (``lr0``, 0.001; the other activations at the ReLU's
   fastest rate) and step by factors of 2 towards the faster side until the fastest rate has a slower (or
   diverged) neighbour on both sides: the optimum is interior.
2. A run is capped at the epochs of the fastest run so far (one that has not reached 25% by then cannot be the
   fastest); equal epochs are broken by the lower error at that epoch. A run whose loss goes non-finite has
   diverged (train.py exits 1 naming the step): slower than any.
3. The fastest rate is run again with the other seeds (uncapped, to ``max_epochs``); epochs = their mean.
4. Ratio (the paper's protocol): mean epochs of tanh at its fastest / of ReLU at its fastest, with the seeds' range.
   Naive: tanh at the ReLU's fastest rate (extended to ``max_epochs``). A run that never got below 25% gives a
   bound (">=").
``tanh`` is tanh(x), cuda-convnet's ``neuron=tanh[1,1]`` (the paper's "tanh neurons"); ``lecun_tanh`` is
1.7159 tanh(2x/3) (LeCun et al. 1998), a check that the result is not about the unit's scale.
Writes <out_dir>/results.json (rewritten after every run) and figure1.png (ReLU solid, tanh dashed).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
import studies  # noqa: E402

TARGET = 0.25  # "reaches a 25% training error rate": EarlyStopping stops below it (strictly, as Lightning compares)
STUDY = {"images": 50000, "activations": "relu,tanh,lecun_tanh", "seeds": "0,1,2", "max_epochs": 100, "lr0": 0.001,
         "net": "cifar_80sec", "out_dir": str(HERE), "log_dir": str(ROOT / "logs"), "extra": ""}
QUICK = {"images": 10000, "activations": "relu,tanh", "seeds": "0", "max_epochs": 15,
         "out_dir": str(ROOT / "logs" / "figure1-quick")}
LINE = {"relu": "-", "tanh": "--", "lecun_tanh": ":"}


def reached(errors: list[float]) -> int | None:
    """The first epoch (1-based) whose training error is below 25%."""
    return next((i + 1 for i, e in enumerate(errors) if e < TARGET), None)


def run_id(opts: dict, activation: str, lr: float, seed: int) -> str:
    """One folder per run; runs with ``extra`` overrides get their own (a hash of them), never the study's."""
    return f"f1-{opts['images']}-{opts['net']}-{activation}-lr{lr:g}-s{seed}" + studies.tag(opts["extra"])


def earlier(out_dir: str | Path) -> dict[str, dict]:
    """The runs of a results.json written before, by run id (their folders may be gone)."""
    path = Path(out_dir) / "results.json"
    runs = json.loads(path.read_text()).get("runs", []) if path.is_file() else []
    return {r["run_id"]: r for r in runs if isinstance(r, dict) and "run_id" in r}


def done(r: dict, epochs: int) -> bool:
    return r["diverged"] or bool(reached(r["errors"])) or (r["status"] == "finished" and len(r["errors"]) >= epochs)


def read_run(folder: Path) -> dict:
    """Its training error per epoch, its status (run.json) and why it failed."""
    record = studies.record(folder)
    errors: dict[int, float] = {}
    path = folder / "csv" / "metrics.csv"
    if path.is_file():
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/top1_err"):
                    errors[int(row["epoch"])] = float(row["train/top1_err"])
    return {"errors": [errors[e] for e in sorted(errors)], "status": record.get("status", "missing"),
            "reason": record.get("reason", ""), "wall_s": record.get("wall_s", 0.0)}


def train(opts: dict, activation: str, lr: float, seed: int, epochs: int) -> dict:
    """One run of +experiment=figure1, trained (or resumed, or extended) to ``epochs`` unless it got below 25% or
    diverged; returns its record."""
    rid = run_id(opts, activation, lr, seed)
    folder = studies.folder(opts["log_dir"], "figure1", rid)
    r = read_run(folder)
    r["diverged"] = r["status"] == "failed" and "not finite" in r["reason"]
    kept = opts.get("earlier", {}).get(rid)
    kept = kept and {**kept, "errors": kept["train_error_per_epoch"], "reason": ""}
    if r["status"] == "missing" and kept and done(kept, epochs):
        r = kept  # its folder is gone
    elif not done(r, epochs):
        code = studies.launch("figure1", rid, overrides(opts, activation, lr, seed) + [
            f"data.root={opts['store']}", f"trainer.max_epochs={epochs}", "test=false", "logger=csv_only",
            *opts["extra"].split()], opts["log_dir"], f": to {epochs} epochs")
        r = read_run(folder)
        r["diverged"] = r["status"] == "failed" and "not finite" in r["reason"]
        if code != 0 and not r["diverged"]:
            sys.exit(f"error: {rid} failed (exit {code}, {r['status']}: {r['reason'] or 'see its log above'})")
    r.update(activation=activation, lr=lr, seed=seed, run_id=rid, cap=max(epochs, r.get("cap", 0)),
             reached=None if r["diverged"] else reached(r["errors"]))
    print(f"   {rid}: " + ("diverged" if r["diverged"] else f"below 25% at epoch {r['reached']}" if r["reached"] else
                            f"{r['errors'][-1]:.4f} after {len(r['errors'])} epochs" if r["errors"] else "no epoch"),
          flush=True)
    return r


def overrides(opts: dict, activation: str, lr: float, seed: int) -> list[str]:
    return [f"model={opts['net']}", f"model.activation={activation}", f"model.optimizer.lr={lr:g}", f"seed={seed}"]


def key(r: dict) -> tuple:
    """Faster first: reached earlier; then the lower error at the epoch it reached (or at its last epoch)."""
    if r["diverged"] or not r["errors"]:
        return (math.inf, math.inf, 1.0)
    if r["reached"]:
        return (0, r["reached"], r["errors"][r["reached"] - 1])
    return (1, -len(r["errors"]), r["errors"][-1])


def rate(lr: float) -> float:
    return float(f"{lr:.6g}")  # 0.001 * 2**k without binary noise: one run per rate


def search(opts: dict, run: Callable[[float, int], dict], max_runs: int = 12) -> tuple[dict, list[dict]]:
    """Steps 1-2: the fastest rate of seed 0, with both neighbours (half and double) run and slower or diverged."""
    runs: dict[float, dict] = {}
    cap = int(opts["max_epochs"])
    lr = rate(float(opts["lr0"]))
    while len(runs) < max_runs:
        runs[lr] = run(lr, cap)
        if runs[lr]["reached"]:
            cap = min(cap, runs[lr]["reached"])
        best = min(runs.values(), key=key)["lr"]
        todo = [n for n in (rate(best * 2), rate(best / 2)) if n not in runs]
        if not todo:
            break
        lr = todo[0]
    grid = [runs[k] for k in sorted(runs)]
    best = min(grid, key=key)
    best["interior"] = {rate(best["lr"] * 2), rate(best["lr"] / 2)} <= set(runs)
    return best, grid


def mean_epochs(rs: list[dict]) -> tuple[float | None, bool]:
    """Mean epochs to 25% over seeds; a seed that never got there counts its epochs run, as a bound (flag)."""
    if not rs:
        return None, False
    bound = any(r["reached"] is None for r in rs)
    return sum(r["reached"] or len(r["errors"]) for r in rs) / len(rs), bound


def ratio(num: list[dict], den: list[dict]) -> dict:
    a, a_bound = mean_epochs(num)
    b, b_bound = mean_epochs(den)
    if not a or not b or b_bound:
        return {"value": None, "text": "undefined (ReLU did not reach 25%)"}
    lo = min(r["reached"] or len(r["errors"]) for r in num) / max(r["reached"] for r in den)
    hi = max(r["reached"] or len(r["errors"]) for r in num) / min(r["reached"] for r in den)
    text = (">= " if a_bound else "") + f"{a / b:.1f}" + (f" (seeds {lo:.1f} to {hi:.1f})" if len(num) > 1 else "")
    return {"value": a / b, "bound": a_bound, "low": lo, "high": hi, "text": text}


def study(opts: dict, run: Callable[[str, float, int, int], dict]) -> dict:
    acts = [a for a in str(opts["activations"]).split(",") if a]
    seeds = [int(s) for s in str(opts["seeds"]).split(",")]
    top = int(opts["max_epochs"])
    results: dict = {"protocol": {k: opts[k] for k in ("images", "net", "max_epochs", "lr0", "activations", "seeds")},
                     "target": TARGET, "grid": {}, "best": {}, "seeds": {}, "ratio": {}, "naive": {}, "ratio_naive": {},
                     "all": []}
    untracked = run

    def run(act: str, lr: float, seed: int, epochs: int) -> dict:  # every run saved as soon as it ends
        r = untracked(act, lr, seed, epochs)
        results["all"].append(r)
        opts["save"](results)
        return r

    for act in acts:
        # where to start: cuda-convnet's epsW for the ReLU; for the others the ReLU's fastest rate, which is also the
        # naive protocol's run (the order of the search changes what it costs, not which rate it finds)
        start = {**opts, "lr0": results["best"]["relu"]["lr"]} if act != "relu" and "relu" in results["best"] else opts
        best, grid = search(start, lambda lr, cap, act=act: run(act, lr, seeds[0], cap))
        results["grid"][act], results["best"][act] = grid, best
        results["seeds"][act] = [best]
        opts["save"](results)
        for s in seeds[1:]:
            results["seeds"][act].append(run(act, best["lr"], s, top))
            opts["save"](results)
        base = results["seeds"].get("relu")
        if act != "relu" and base:  # this activation's ratios as soon as its seeds are in (a study may stop later)
            # the naive run (at the ReLU's rate) was the first of this activation's search: read back, not rerun
            naive = run(act, results["best"]["relu"]["lr"], seeds[0], top)
            results["naive"][act], results["ratio_naive"][act] = naive, ratio([naive], base[:1])
            results["ratio"][act] = ratio(results["seeds"][act], base)
            opts["save"](results)
    return results


def command(opts: dict, r: dict) -> str:
    """The train.py command that reruns one run (it stops by itself below 25%)."""
    root = [] if int(opts["images"]) == 50000 else [f"data.root=$HOME/.cache/alexnet-lit/{Path(opts['store']).name}"]
    return " ".join(["python train.py +experiment=figure1", *overrides(opts, r["activation"], r["lr"], r["seed"]),
                     *root, *opts["extra"].split()])


def publish(results: dict, opts: dict) -> dict:
    """results.json: the protocol, every run (the longest record of each), the fastest rate per activation with
    its epochs per seed, whether the grid brackets it, the ratios, and the commands that rerun them."""
    runs: dict[str, dict] = {}
    groups = [*results["grid"].values(), *results["seeds"].values(), list(results.get("naive", {}).values()),
              results.get("all", [])]
    for r in (r for group in groups for r in group):
        if r["run_id"] not in runs or len(r["errors"]) > len(runs[r["run_id"]]["train_error_per_epoch"]):
            runs[r["run_id"]] = {
                "run_id": r["run_id"], "activation": r["activation"], "lr": r["lr"], "seed": r["seed"],
                "epochs_to_threshold": r["reached"], "diverged": r["diverged"], "status": r["status"],
                "cap": r["cap"], "train_error_per_epoch": [round(e, 5) for e in r["errors"]],
                "wall_s": round(r.get("wall_s", 0.0), 1), "command": command(opts, r)}
    best = {a: {"lr": b["lr"], "epochs": [r["reached"] for r in results["seeds"][a]],
                "run_ids": [r["run_id"] for r in results["seeds"][a]]} for a, b in results["best"].items()}
    ratio = {a: {"paper_protocol": r["value"], "min": r.get("low"), "max": r.get("high"), "bound": r.get("bound"),
                 "naive": results["ratio_naive"][a]["value"], "text": r["text"],
                 "naive_text": results["ratio_naive"][a]["text"]} for a, r in results.get("ratio", {}).items()}
    relu = results["best"].get("relu")
    return {"net": opts["net"], "train_images": int(opts["images"]),
            "pixel_scale": "raw 0..255 minus the mean image of the training images (cuda-convnet's convdata.py)",
            "threshold": TARGET, "protocol": results["protocol"], "machine": opts["machine"],
            "date": time.strftime("%Y-%m-%d"), "study_s": round(time.monotonic() - opts["t0"], 1),
            "runs_wall_s": round(sum(r["wall_s"] for r in runs.values()), 1),  # over every session of the study
            "study_command": "python experiments/figure1/figure1.py " + " ".join(opts["argv"]),
            "command": command(opts, relu) if relu else None,
            "best": best, "grid_interior": {a: b["interior"] for a, b in results["best"].items()},
            "grid": {a: [r["lr"] for r in grid] for a, grid in results["grid"].items()},
            "naive": {a: r["run_id"] for a, r in results.get("naive", {}).items()},
            "ratio": ratio, "runs": sorted(runs.values(), key=lambda r: (r["activation"], r["lr"], r["seed"]))}


def plot(results: dict, out: Path) -> None:
    """Training error against epochs as the paper draws it (ReLU solid, tanh dashed), from results.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {r["run_id"]: r for r in results["runs"]}
    fastest = {a: runs[b["run_ids"][0]] for a, b in results["best"].items()}
    naive = {"relu": fastest.get("relu"), **{a: runs[rid] for a, rid in results["naive"].items()}}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (title, panel) in zip(axes, (("each at its fastest learning rate (the paper's protocol)", fastest),
                                         ("at the ReLU's fastest rate (naive)", naive))):
        for act, r in panel.items():
            if not r or not r["train_error_per_epoch"]:
                continue
            errors, at = r["train_error_per_epoch"], r["epochs_to_threshold"]
            ax.plot(range(1, len(errors) + 1), errors, LINE.get(act, "-."), color="k",
                    label=f"{act}, lr {r['lr']:g}" + (f": below 25% at epoch {at}" if at else
                                                      " (diverged)" if r["diverged"] else ""))
        ax.axhline(TARGET, color="C3", lw=0.8)
        ax.set_xlabel("epochs")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training error rate")
    axes[0].set_ylim(0, 0.8)
    ratios = ", ".join(f"{a}/relu {r['text']}" for a, r in results["ratio"].items())
    fig.suptitle(f"Figure 1: {results['net']} on {results['train_images']:,} CIFAR-10 training images, seeds "
                 f"{results['protocol']['seeds']}: {ratios or 'ratio pending'} (paper: 6)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "figure1.png", dpi=120)
    plt.close(fig)


def options(argv: list[str]) -> dict:
    words = [a for a in argv if "=" not in a]
    unknown = [w for w in words if w not in ("quick", "plot", "park")]
    given = dict(a.split("=", 1) for a in argv if "=" in a)
    bad = sorted(set(given) - set(STUDY))
    if unknown or bad:
        studies.user_error(f"unknown {'argument' if unknown else 'option'} {(unknown or bad)[0]!r}: "
                 f"give quick, plot, park or {', '.join(k + '=' for k in STUDY)}")
    opts = {**STUDY, **(QUICK if "quick" in words else {}), **given, "plot": "plot" in words, "park": "park" in words}
    if "out_dir" not in given and "quick" not in words and opts["net"] != STUDY["net"]:
        opts["out_dir"] = str(HERE / opts["net"])  # another net's row: its own results.json, never over 80sec's
    return opts


def main(argv: list[str]) -> None:
    from alexnet_lit.machine import cpu_name

    opts = options(argv)
    out = Path(opts["out_dir"])
    if opts["plot"]:
        plot(json.loads((out / "results.json").read_text()), out)
        return
    if opts["park"]:
        parked = studies.park(opts["log_dir"], "figure1", out / "parked")
        print(f"parked in {out / 'parked'}: {', '.join(parked) or '-'}")
        return
    if restored := studies.unpark(out / "parked", opts["log_dir"], "figure1"):
        print(f"resuming parked runs: {', '.join(restored)}", flush=True)
    images = int(opts["images"])
    if images % 10 or not 0 < images <= 50000:
        studies.user_error(f"images={images}: give a multiple of 10 up to 50000 (the first images/10 of each class)")
    opts["store"] = str(studies.store(32, None if images == 50000 else images // 10))
    opts.update(t0=time.monotonic(), argv=argv, machine=f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores",
                earlier=earlier(out))
    print(f"machine: {opts['machine']}", flush=True)

    def save(results: dict) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        published = publish(results, opts)
        (out / "results.json").write_text(json.dumps(published, indent=1))
        return published

    opts["save"] = save
    published = save(study(opts, lambda act, lr, seed, epochs: train(opts, act, lr, seed, epochs)))
    plot(published, out)
    for act, grid in published["grid"].items():
        print(f"{act}: " + ", ".join(f"lr {r['lr']:g} -> {'x' if r['diverged'] else r['epochs_to_threshold'] or '-'}"
                                     for r in published["runs"] if r["activation"] == act and r["seed"] == 0
                                     and r["lr"] in grid))
    for act, r in published["ratio"].items():
        print(f"{act}/relu, each at its fastest rate: {r['text']}; naive: {r['naive_text']}")
    print(f"took {(time.monotonic() - opts['t0']) / 60:.1f} min; {out / 'results.json'}, {out / 'figure1.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])
