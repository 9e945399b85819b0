"""``alexnet-report --wandb``: a W&B report of a sweep, top-1 and top-5 of every ablation side by side.

Needs the optional ``wandb-workspaces`` (``pip install -e .[report]``) and W&B online (a key). The sweep's runs
share one W&B group (the sweep folder's name, loggers.py) and carry their experiment in the config, so the
report's run set is that group, grouped by ``experiment_name``: bars of the mean best val and test errors per
ablation with the spread between seeds, and the val curves. ``build_report`` makes the object without saving it
(the tests do that offline); ``report.save()`` publishes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alexnet_lit.config import ConfigError
from alexnet_lit.metrics import ERRORS, MONITOR, logged


def check_online() -> None:
    try:
        import wandb_workspaces  # noqa: F401
    except ImportError:
        raise ConfigError("--wandb needs wandb-workspaces: pip install -e .[report] (or pip install "
                          "'wandb[workspaces]')") from None
    from alexnet_lit.loggers import should_run_offline

    if should_run_offline():
        raise ConfigError("--wandb publishes a report on W&B, which needs WANDB_API_KEY (W&B is offline here); "
                          "sync the runs first with `wandb sync`, or drop --wandb for report.md only")


def sweep_group(data: dict[str, Any]) -> str | None:
    """The W&B group of the report's runs: their sweep folder's name (loggers.wandb_group), when they share one."""
    folders = {Path(r["folder"]).parent.name for r in data["runs"] if r.get("folder")}
    return folders.pop() if len(folders) == 1 else None


def build_report(data: dict[str, Any], project: str, entity: str | None = None):
    import wandb_workspaces.reports.v2 as wr

    group = sweep_group(data)
    entity = entity or os.environ.get("WANDB_ENTITY") or ""
    runset = wr.Runset(entity=entity, project=project, name=group or "runs",
                       filters=f"Group = '{group}'" if group else "", groupby=["config.experiment_name"])
    bars = [wr.BarPlot(title=m, metrics=[m], groupby="config.experiment_name", groupby_aggfunc="mean",
                       groupby_rangefunc="stddev", orientation="h") for m in ERRORS]
    curves = [wr.LinePlot(title=m, x="epoch", y=[m], groupby="config.experiment_name", groupby_aggfunc="mean",
                          groupby_rangefunc="stddev") for m in (MONITOR, logged("train"))]
    lines = [f"{e['ablation']}: {e['top1']:+.2f} top-1 (the paper, section {e['claim'].get('section')}: "
             f"{e['claim'].get('claim', '')})" for e in data["effects"] if e["top1"] is not None]
    blocks = [
        wr.H1(f"AlexNet ablations: {group or 'runs'}"),
        wr.P(f"Baseline: {data['baseline']}. Effects in percentage points of top-1 error against it, as measured "
             f"by alexnet-report (report.md has the table with standard errors)."),
        wr.UnorderedList(items=lines or ["no finished ablation runs"]),
        wr.PanelGrid(runsets=[runset], panels=bars + curves),
    ]
    return wr.Report(project=project, entity=entity, title=f"AlexNet ablations: {group or 'runs'}",
                     description="top-1 and top-5 error of every ablation side by side (alexnet-report --wandb)",
                     blocks=blocks)
