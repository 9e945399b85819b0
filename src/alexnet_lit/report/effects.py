"""The numbers of the ablation report, as plain data (``build`` -> report.json): per experiment, per ablation's
effect, the noise, the training speed.

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
shown relative to it (``shown``).
"""

from __future__ import annotations

import math
import os
import statistics
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

