"""The ablation report's pages: report.md (the tables of effects.py's ``build``, each ablation's effect beside the
paper's claim), report.json and the curves (learning_curves.png, lr.png). Numbers are errors in percent; what
they mean and when an effect counts: report/effects.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from alexnet_lit.report.effects import METRICS, Experiment, Stat, build, group
from alexnet_lit.report.runs import Run


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
