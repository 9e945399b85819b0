"""Compare the runs of a sweep (or any run folders) beside the paper's claims: report.md, report.json, PNG plots.

    alexnet-report runs=logs/multiruns/ablations-cifar10 out_dir=reports/ablations-cifar10
    alexnet-report 'runs=[logs/paper/runs/a,logs/no_lrn/runs/b]' out_dir=reports/ab
    alexnet-report runs=logs/multiruns/<id> out_dir=... baseline=two_gpu     # compare against another experiment
    alexnet-report runs=... out_dir=... --wandb    # also a W&B report of the sweep (online; pip install -e .[report])
    alexnet-report runs=wandb:ENTITY/alexnet-lit/<sweep> out_dir=...   # the runs of a W&B group (online)

Reads each run's composed config (.hydra/config.yaml), csv/metrics.csv and run.json (report/runs.py); a sweep
folder's multirun.yaml says which jobs the sweep was to run, so jobs that never started show as missing. The
tables: report/write.py; the effects against the baseline and how noise is judged: report/effects.py; the
paper's numbers: report/paper_claims.yaml.
"""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from pathlib import Path

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from alexnet_lit.config import ConfigError, ReportConfig, build
from alexnet_lit.entry import config_dir, exit_on_user_error, hydra_entry_point
from alexnet_lit.loggers import should_run_offline
from alexnet_lit.paths import check_writable
from alexnet_lit.report.effects import shown
from alexnet_lit.report.runs import read_runs, read_wandb
from alexnet_lit.report.wandb_report import build_report, check_online
from alexnet_lit.report.write import write


def run_paths(runs) -> list[str]:
    if isinstance(runs, (list, tuple, ListConfig)):
        return [str(r) for r in runs]
    return [str(runs)]


def check_report(cfg: DictConfig) -> ReportConfig:
    """Before any work: runs and out_dir given, at least one of the runs there, out_dir writable, W&B usable."""
    missing = [k for k in ("runs", "out_dir") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set: alexnet-report runs=logs/multiruns/<id> "
                          f"out_dir=reports/<id> (runs: a sweep folder, a run folder or a list of them)")
    c = build(ReportConfig, OmegaConf.to_container(cfg, resolve=True))
    paths = run_paths(c.runs)
    if any(p.startswith("wandb:") for p in paths):
        if should_run_offline():
            raise ConfigError(f"runs={paths[0]}: reading runs from W&B needs W&B online (WANDB_API_KEY); give the "
                              f"run or sweep folders instead")
    elif not any(Path(p).expanduser().is_dir() for p in paths):
        raise ConfigError(f"runs={paths[0] if len(paths) == 1 else paths}: no such folder; give a sweep folder "
                          f"(logs/multiruns/<id>) or run folders (logs/<experiment>/runs/<id>)")
    check_writable(c.out_dir, "out_dir")
    if c.wandb:
        check_online()
    return c


def run(cfg: DictConfig) -> None:
    c = check_report(cfg)

    runs = []
    for p in run_paths(c.runs):
        runs += read_wandb(p) if p.startswith("wandb:") else read_runs([Path(p).expanduser()])

    def arg(a: str) -> str:  # key=/abs/path under the working directory: as a relative path (no machine's paths)
        k, eq, v = a.partition("=")
        return f"{k}={shown(v)}" if eq and v.startswith("/") else a

    command = "alexnet-report " + " ".join(shlex.quote(arg(a)) for a in sys.argv[1:])
    data = write(runs, c.out_dir, command, c.baseline)
    states = Counter(r.state for r in runs)
    print(f"{len(runs)} runs of {len(data['experiments'])} experiments ("
          + ", ".join(f"{n} {s}" for s, n in states.most_common()) + f"): {c.out_dir}/report.md")
    for r in data["not_finished"]:
        if r["state"] != "missing":  # missing jobs are listed in the report; these need a look
            print(f"  {r['state']}: {r['experiment']} seed {r['seed']} ({r['folder'] or r['job']}) {r['reason']}")
    if c.wandb:
        report = build_report(data, c.project, c.entity)
        report.save()
        print(f"W&B report: {report.url}")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="report")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(run, cfg)


def main() -> None:
    sys.argv = [("wandb=true" if a == "--wandb" else a) for a in sys.argv]  # the flag form, as the README writes it
    hydra_entry_point(_hydra_main, "report", check_report)


if __name__ == "__main__":
    main()
