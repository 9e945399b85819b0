"""The ablation report: tables per experiment, each ablation's effect beside the paper's claim, the curves.

Numbers are errors in percent. An experiment's row is the mean and the standard deviation over its finished
runs (seeds). The effect of an ablation is its mean test error (the best-val checkpoint, 1 crop; else its best
val error) minus the baseline's, in percentage points: positive means removing the paper's choice made things
worse, as every claim of the paper says. It counts as beyond the noise when |effect| > 2 standard errors of the
difference of two means, sqrt(s_a^2 / n_a + s_b^2 / n_b) (with a single run on either side there is no noise
estimate and the column says so); 2 standard errors is also the smallest effect the study can resolve, printed
beside each one. A run whose best val top-1 error (else its test error) is within 1 point of chance
(100 (1 - 1/classes)) or above it did not train: an effect with such a run on either side is reported as "did not
train", never as agreeing or disagreeing with the paper. Runs that are missing, failed, killed or still running
are listed, never left out silently; only finished runs enter the means. Folders under the working directory are
shown relative to it.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from alexnet_lit.metrics import TEN_CROP, TOP1, TOP5, logged
from alexnet_lit.report.runs import Run

METRICS = {  # report key -> (label, how a run gives it)
    "val_top1": ("best val top-1", lambda r: _pct(r.best().val_top1 if r.best() else None)),
    "val_top5": ("best val top-5", lambda r: _pct(r.best().val_top5 if r.best() else None)),
    "test_top1": ("test top-1", lambda r: _pct(r.test.get(logged("test")))),
    "test_top5": ("test top-5", lambda r: _pct(r.test.get(logged("test", TOP5)))),
    "test_top1_10crop": ("test top-1, 10 crops", lambda r: _pct(r.test.get(logged("test", TOP1, TEN_CROP)))),
    "test_top5_10crop": ("test top-5, 10 crops", lambda r: _pct(r.test.get(logged("test", TOP5, TEN_CROP)))),
    "overfit": ("val - train top-1, last epoch", lambda r: _gap(r)),
}


UNTRAINED_POINTS = 1.0  # within this many points of chance: did not train


def shown(path: str | os.PathLike | None) -> str | None:
    """A folder as the report prints it: relative to the working directory when under it (no machine's paths)."""
    if path is None:
        return None
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve())) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)


def chance(r: Run) -> float | None:
    """The error of a uniform guess, in %, from the run's data.num_classes."""
    return 100.0 * (1 - 1 / r.num_classes) if r.num_classes else None


def trained_by(r: Run) -> float | None:
    """The error that says whether a run learned: its best val top-1, else its test top-1 (in %)."""
    v = METRICS["val_top1"][1](r)
    return METRICS["test_top1"][1](r) if v is None else v


def did_not_train(r: Run, top1: float | None) -> bool:
    return top1 is not None and (c := chance(r)) is not None and top1 >= c - UNTRAINED_POINTS


def steps_to(r: Run, level: float) -> int | None:
    """Training speed: the optimizer steps to the end of the first epoch whose train top-1 error (the epoch's
    mean, in %) is at or below ``level``; None if none got there."""
    return next((e.step for e in r.epochs if e.train_top1 is not None and 100 * e.train_top1 <= level), None)


def speed(experiments: dict[str, Experiment], baseline: str) -> dict[str, Any] | None:
    """Steps each experiment's runs take to the training error the baseline reaches (the mean over its seeds of
    their last epoch's train top-1): how fast it learns, beside how well (section 3.1's measure of speed)."""
    base = experiments.get(baseline)
    last = [100 * r.epochs[-1].train_top1 for r in base.finished if r.epochs and r.epochs[-1].train_top1 is not None] \
        if base else []
    if not last:
        return None
    level = statistics.fmean(last)
    per = {}
    for name, exp in experiments.items():
        steps = [steps_to(r, level) for r in exp.finished]
        reached = [s for s in steps if s is not None]
        per[name] = {"mean_steps": statistics.fmean(reached) if reached else None, "reached": len(reached),
                     "runs": len(steps)}
    return {"level": level, "experiments": per}


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _gap(r: Run) -> float | None:
    last = [e for e in r.epochs if e.val_top1 is not None and e.train_top1 is not None]
    return 100.0 * (last[-1].val_top1 - last[-1].train_top1) if last else None


def paper_claims() -> dict[str, Any]:
    """src/alexnet_lit/report/paper_claims.yaml: the paper's numbers, each with its section."""
    return yaml.safe_load(resources.files("alexnet_lit.report").joinpath("paper_claims.yaml").read_text())


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n >= 2 else None

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return "-"
        return f"{self.mean:.{digits}f}" + (f" ± {self.std:.{digits}f}" if self.std is not None else "")


@dataclass
class Experiment:
    name: str
    runs: list[Run]
    finished: list[Run] = field(init=False)

    def __post_init__(self) -> None:
        self.finished = [r for r in self.runs if r.state == "finished"]

    def stat(self, key: str) -> Stat:
        get = METRICS[key][1]
        return Stat([v for r in self.finished if (v := get(r)) is not None])

    def headline_of(self, r: Run, top: int) -> float | None:
        """Test error of the best checkpoint (1 crop), or the best val error when a run has no test rows."""
        v = METRICS[f"test_top{top}"][1](r)
        return METRICS[f"val_top{top}"][1](r) if v is None else v

    def headline(self, top: int) -> Stat:
        return Stat([v for r in self.finished if (v := self.headline_of(r, top)) is not None])

    def untrained(self) -> list[Run]:
        """Finished runs at chance: within 1 point of a uniform guess's top-1 error."""
        return [r for r in self.finished if did_not_train(r, trained_by(r))]


@dataclass
class Effect:
    ablation: str
    claim: dict[str, Any]
    top1: float | None
    top5: float | None
    se1: float | None
    se5: float | None
    agrees: str
    beyond_noise: str
    resolvable: float | None = None  # 2 SE: the smallest effect these seeds resolve


def difference(a: Stat, b: Stat) -> tuple[float | None, float | None]:
    """(mean a - mean b, its standard error), None where not measurable."""
    if a.mean is None or b.mean is None:
        return None, None
    if a.std is None or b.std is None:
        return a.mean - b.mean, None
    return a.mean - b.mean, math.sqrt(a.std**2 / a.n + b.std**2 / b.n)


def effect(name: str, abl: Experiment, base: Experiment, claim: dict[str, Any]) -> Effect:
    kind = claim.get("kind", "worse")
    if kind == "overfit":
        d1, se1 = difference(abl.stat("overfit"), base.stat("overfit"))
        d5, se5 = None, None
    else:
        d1, se1 = difference(abl.headline(1), base.headline(1))
        d5, se5 = difference(abl.headline(5), base.headline(5))
    at_chance = {n: (len(e.untrained()), len(e.finished)) for n, e in (("ablation", abl), ("baseline", base))
                 if e.untrained()}
    resolvable = 2 * se1 if se1 else None
    if d1 is not None and at_chance:
        where = "; ".join(f"{k}: {n} of {m} runs" for k, (n, m) in at_chance.items())
        return Effect(name, claim, d1, d5, se1, se5, f"did not train ({where} within {UNTRAINED_POINTS:g} point of "
                      f"chance)", "- (not counted)", resolvable)
    if d1 is None:
        agrees = "no finished runs"
    elif kind == "at_least":
        agrees = "yes" if d1 >= claim["top1"] else ("sign only" if d1 > 0 else "no")
    else:
        agrees = "yes" if d1 > 0 else "no"
    if d1 is None:
        beyond = "-"
    elif se1 is None:
        beyond = "no estimate (1 run)"
    elif se1 == 0:
        beyond = "no spread between seeds" + (": yes" if d1 != 0 else ": no effect")
    else:
        beyond = f"yes ({abs(d1) / se1:.1f} SE)" if abs(d1) > 2 * se1 else f"no ({abs(d1) / se1:.1f} SE)"
    return Effect(name, claim, d1, d5, se1, se5, agrees, beyond, resolvable)


def group(runs: list[Run]) -> dict[str, Experiment]:
    names = list(dict.fromkeys(r.experiment for r in runs))
    return {n: Experiment(n, [r for r in runs if r.experiment == n]) for n in names}


def _signed(x: float | None, se: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:+.2f}" + (f" ± {se:.2f}" if se is not None else "")


def _claim_text(claim: dict[str, Any]) -> str:
    kind = claim.get("kind")
    if kind == "number":
        return f"+{claim['top1']} / +{claim['top5']}" if "top5" in claim else f"about +{claim['top1']} top-1"
    if kind == "at_least":
        return f"over +{claim['top1']} top-1"
    if kind == "overfit":
        return "substantial overfitting (gap grows)"
    return "worse"


def _steps(s: float | None) -> str:
    return "-" if s is None else f"{s:,.0f}"


def _minutes(s: float | None) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"


def plot_curves(experiments: dict[str, Experiment], out: Path) -> list[str]:
    """learning_curves.png (train and val top-1 error against epoch, every run) and lr.png; returns the names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    fig_lr, ax_lr = plt.subplots(figsize=(6, 4))
    for i, (name, exp) in enumerate(experiments.items()):
        for j, r in enumerate(exp.runs):
            label = name if j == 0 else None
            ep = [e for e in r.epochs]
            for ax, key in zip(axes, ("train_top1", "val_top1")):
                pts = [(e.epoch + 1, 100 * getattr(e, key)) for e in ep if getattr(e, key) is not None]
                if pts:
                    ax.plot(*zip(*pts), color=colours(i % 10), alpha=0.8, label=label, marker=".")
            lr = [(e.epoch + 1, e.lr) for e in ep if e.lr is not None]
            if lr:
                ax_lr.plot(*zip(*lr), color=colours(i % 10), alpha=0.8, label=label, marker=".")
    from matplotlib.ticker import MaxNLocator

    for ax, title in zip([*axes, ax_lr], ("train top-1 error (%)", "val top-1 error (%)", "learning rate (weights)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(fontsize=8)
    ax_lr.set_yscale("log")
    ax_lr.legend(fontsize=8)
    fig.tight_layout()
    fig_lr.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    fig_lr.savefig(out / "lr.png", dpi=110)
    plt.close(fig)
    plt.close(fig_lr)
    return ["learning_curves.png", "lr.png"]


def build(runs: list[Run], baseline: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain data (report.json)."""
    claims = paper_claims()
    baseline = baseline or claims["baseline"]["experiment"]
    experiments = group(runs)
    rows = []
    for name, exp in experiments.items():
        row = {"experiment": name, "runs": len(exp.runs), "finished": len(exp.finished)}
        for key in METRICS:
            s = exp.stat(key)
            row[key] = {"mean": s.mean, "std": s.std, "n": s.n, "values": s.values}
        epochs = [len(r.epochs) for r in exp.finished]
        walls = [r.wall_s for r in exp.finished if r.wall_s is not None]
        speeds = [r.images_per_s for r in exp.finished if r.images_per_s is not None]
        row["epochs"] = max(epochs) if epochs else None
        row["wall_s"] = statistics.fmean(walls) if walls else None
        row["images_per_s"] = statistics.fmean(speeds) if speeds else None
        rows.append(row)
    effects = []
    if baseline in experiments:
        for name, exp in experiments.items():
            if name == baseline:
                continue
            claim = claims["ablations"].get(name, {"section": "-", "claim": "not a claim of the paper",
                                                   "kind": "worse"})
            effects.append(effect(name, exp, experiments[baseline], claim).__dict__)
    not_finished = [{"experiment": r.experiment, "seed": r.seed, "state": r.state, "job": r.job,
                     "folder": shown(r.folder), "reason": r.reason}
                    for r in runs if r.state != "finished"]
    all_runs = [{"experiment": r.experiment, "seed": r.seed, "state": r.state, "classes": r.num_classes,
                 "folder": shown(r.folder), "epochs": len(r.epochs),
                 "did_not_train": did_not_train(r, trained_by(r)),
                 **{k: METRICS[k][1](r) for k in METRICS}} for r in runs]
    noise = {name: {"top1_std": exp.headline(1).std, "n": exp.headline(1).n} for name, exp in experiments.items()}
    b = experiments[baseline].headline(1) if baseline in experiments else None
    # two experiments with the baseline's spread and seeds: 2 SE of their difference, 2 s sqrt(2 / n)
    smallest = 2 * b.std * math.sqrt(2 / b.n) if b and b.std is not None else None
    return {"baseline": baseline, "paper_baseline": claims["baseline"], "experiments": rows, "effects": effects,
            "noise": noise, "smallest_resolvable": smallest, "speed": speed(experiments, baseline),
            "not_finished": not_finished, "runs": all_runs}


def markdown(data: dict[str, Any], plots: list[str], command: str) -> str:
    base = data["baseline"]
    n = len(data["runs"])
    done = sum(r["state"] == "finished" for r in data["runs"])
    lines = ["# Ablation report", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M %Z')} by `{command}`. {n} runs, {done} finished"
             + (f", {n - done} not (listed below)" if n > done else "") + ". Errors in %, mean ± standard "
             "deviation over seeds (finished runs only).", ""]
    lines += ["## Experiments", "",
              "| experiment | runs | " + " | ".join(METRICS[k][0] for k in METRICS if k != "overfit")
              + " | epochs | wall time | images/s |",
              "|---" * (len(METRICS) + 4) + "|"]
    for row in data["experiments"]:
        cells = [Stat(row[k]["values"]).text() for k in METRICS if k != "overfit"]
        speed = f"{row['images_per_s']:,.0f}" if row["images_per_s"] else "-"
        lines.append(f"| {row['experiment']} | {row['finished']}/{row['runs']} | " + " | ".join(cells)
                     + f" | {row['epochs'] or '-'} | {_minutes(row['wall_s'])} | {speed} |")
    pb = data["paper_baseline"]
    lines += ["", f"The paper's full recipe (section {pb['section']}): {pb['claim']}.", ""]
    if data["effects"]:
        lines += [f"## Effect of each ablation against `{base}`", "",
                  "Percentage points of error the ablation adds (ablation - baseline; test error of the best-val "
                  "checkpoint, 1 crop), ± its standard error. `overfit` rows compare the gap val - train top-1 at "
                  "the last epoch instead.", "",
                  "| ablation | paper (section) | the paper: top-1 / top-5 | measured top-1 | measured top-5 | "
                  "sign agrees | beyond noise (> 2 SE) | smallest resolvable (2 SE) |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in data["effects"]:
            c = e["claim"]
            lines.append(f"| {e['ablation']} | {c.get('section', '-')} | {_claim_text(c)} | "
                         f"{_signed(e['top1'], e['se1'])} | {_signed(e['top5'], e['se5'])} | {e['agrees']} | "
                         f"{e['beyond_noise']} | {_signed(e['resolvable']).lstrip('+')} |")
        lines += ["", "The paper's words:", ""]
        lines += [f"- `{e['ablation']}` (section {e['claim'].get('section', '-')}): {e['claim'].get('claim', '')}"
                  for e in data["effects"]]
        lines.append("")
    if data.get("speed"):
        sp = data["speed"]
        lines += ["## Training speed", "", f"Optimizer steps to the end of the first epoch whose training top-1 error "
                  f"is at or below {sp['level']:.2f}% (where `{base}` ends, the mean over its seeds), mean over the "
                  f"runs that got there: how fast each net learns, beside how well.", "",
                  "| experiment | steps | runs that got there |", "|---|---|---|"]
        lines += [f"| {n} | {_steps(v['mean_steps'])} | {v['reached']} of {v['runs']} |"
                  for n, v in sp["experiments"].items()]
        lines.append("")
    lines += ["## Noise between seeds", "",
              "Standard deviation of the headline top-1 error between seeds, per experiment: "
              + ", ".join(f"{k} {v['top1_std']:.2f} (n={v['n']})" if v["top1_std"] is not None
                          else f"{k} - (n={v['n']})" for k, v in data["noise"].items()) + "."
              + (f" With the baseline's spread and seeds, the smallest difference this study resolves (2 standard "
                 f"errors of a difference of two means) is {data['smallest_resolvable']:.2f} points: an effect the "
                 f"paper reports below that cannot be confirmed or refuted here."
                 if data.get("smallest_resolvable") is not None else ""), ""]
    if plots:
        lines += ["## Curves", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if data["not_finished"]:
        lines += ["## Runs that did not finish", "", "| experiment | seed | state | job or folder | reason |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['experiment']} | {r['seed']} | {r['state']} | {r['folder'] or r['job']} | {r['reason']} |"
                  for r in data["not_finished"]]
        lines.append("")
    lines += ["## All runs", "", "| experiment | seed | state | epochs | best val top-1 | test top-1 | "
              "test top-1, 10 crops | trained | folder |", "|---|---|---|---|---|---|---|---|---|"]
    for r in data["runs"]:
        cells = [("-" if r[k] is None else f"{r[k]:.2f}") for k in ("val_top1", "test_top1", "test_top1_10crop")]
        trained = "no: at chance" if r["did_not_train"] else "yes"
        lines.append(f"| {r['experiment']} | {r['seed']} | {r['state']} | {r['epochs']} | " + " | ".join(cells)
                     + f" | {trained} | {r['folder'] or '-'} |")
    return "\n".join(lines) + "\n"


def write(runs: list[Run], out_dir: str | Path, command: str, baseline: str | None = None) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = build(runs, baseline)
    plots = plot_curves(group(runs), out) if any(r.epochs for r in runs) else []
    (out / "report.md").write_text(markdown(data, plots, command))
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str))
    return data
