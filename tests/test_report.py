"""alexnet-report on a real tiny sweep: the numbers in its tables are the runs' CSVs, missing and failed runs are
shown as such, the paper's numbers sit beside each ablation, and the W&B report object builds offline."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import statistics
import sys
from pathlib import Path

import pytest

from alexnet_lit.report.effects import build, paper_claims
from alexnet_lit.report.runs import read_runs
from conftest import ROOT, TINY, run_cli, run_in_process

BIN = Path(sys.executable).parent
REPORT = str(BIN / "alexnet-report")
FEW = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
       "trainer.limit_test_batches=1", "logger=csv_only"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, cache_dir) -> Path:
    """paper and no_lrn, seeds 0 and 1, tiny: 4 real runs in one sweep folder."""
    logs = tmp_path_factory.mktemp("logs")
    proc = run_cli(["-m", "seed=0,1", "+experiment=paper,no_lrn", *TINY, *FEW, f"paths.log_dir={logs}",
                    "run_id=tiny"], logs, cache_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return logs / "multiruns" / "tiny"


def csv_numbers(folder: Path) -> dict[str, float]:
    """What a reader would take from metrics.csv by hand: best val top-1, test top-1 (1 and 10 crops), in %."""
    with (folder / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val/top1_err"]) for r in rows if r.get("val/top1_err")]
    test = [float(r["test/top1_err"]) for r in rows if r.get("test/top1_err")]
    ten = [float(r["test/top1_err_10crop"]) for r in rows if r.get("test/top1_err_10crop")]
    return {"val_top1": 100 * min(val), "test_top1": 100 * test[-1], "test_top1_10crop": 100 * ten[-1],
            "epochs": len(val)}


def test_report_tables_match_the_csvs_and_a_missing_run_is_missing(sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(sweep, copy)
    jobs = sorted(p for p in copy.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_paper", "1_no_lrn", "2_paper", "3_no_lrn"]
    shutil.rmtree(copy / "3_no_lrn")  # as if the sweep died before its last job
    proc = run_cli([f"runs={copy}", f"out_dir={tmp_path / 'out'}"], tmp_path, tmp_path, script=REPORT)
    assert proc.returncode == 0, proc.stderr
    assert "3 finished" in proc.stdout and "1 missing" in proc.stdout
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    md = (tmp_path / "out" / "report.md").read_text()

    by_exp = {row["experiment"]: row for row in data["experiments"]}
    for name, folders in (("paper", ["0_paper", "2_paper"]), ("no_lrn", ["1_no_lrn"])):
        hand = [csv_numbers(copy / f) for f in folders]
        row = by_exp[name]
        assert row["finished"] == len(folders) and row["runs"] == 2
        for key in ("val_top1", "test_top1", "test_top1_10crop"):
            assert row[key]["values"] == pytest.approx([h[key] for h in hand]), (name, key)
        mean = statistics.fmean(h["test_top1"] for h in hand)
        cell = f"{mean:.2f}" + (f" ± {statistics.stdev(h['test_top1'] for h in hand):.2f}" if len(hand) > 1 else "")
        assert cell in md.split(f"| {name} |")[1].splitlines()[0], (name, cell)  # the table row shows them
        assert row["epochs"] == hand[0]["epochs"] == 2

    (effect,) = data["effects"]
    assert effect["ablation"] == "no_lrn" and effect["claim"]["top1"] == 1.4 and effect["claim"]["section"] == "3.3"
    hand_effect = csv_numbers(copy / "1_no_lrn")["test_top1"] - statistics.fmean(
        csv_numbers(copy / f)["test_top1"] for f in ("0_paper", "2_paper"))
    assert effect["top1"] == pytest.approx(hand_effect)
    # a run whose best val top-1 is within 1 point of chance (1 - 1/classes) or above did not train: no sign counted
    chance = 100 * (1 - 1 / data["runs"][0]["classes"])
    at_chance = [csv_numbers(copy / f)["val_top1"] >= chance - 1 for f in ("0_paper", "1_no_lrn", "2_paper")]
    assert [r["did_not_train"] for r in data["runs"][:3]] == at_chance
    if any(at_chance):
        assert effect["agrees"].startswith("did not train (") and effect["beyond_noise"] == "- (not counted)"
    else:
        assert effect["beyond_noise"] == "no estimate (1 run)"  # one no_lrn run: no spread to judge by
    assert "| no_lrn | 3.3 | +1.4 / +1.2 |" in md

    (gone,) = data["not_finished"]
    assert gone["state"] == "missing" and gone["experiment"] == "no_lrn" and gone["seed"] == 1
    assert "| no_lrn | 1 | missing |" in md
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "lr.png").is_file()


def test_failed_killed_and_running_runs_are_shown_as_such(sweep, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(sweep, copy)
    host = socket.gethostname()
    for job, record in (("0_paper", {"status": "failed", "reason": "Diverged: train/loss is not finite"}),
                        ("1_no_lrn", {"status": "running", "pid": 2**22 + 12345, "host": host}),  # above pid_max
                        ("2_paper", {"status": "running", "pid": os.getpid(), "host": host})):
        (copy / job / "run.json").write_text(json.dumps(record))
    runs = {r.folder.name: r for r in read_runs([copy])}
    assert runs["0_paper"].state == "failed" and "not finite" in runs["0_paper"].reason
    assert runs["1_no_lrn"].state == "killed"  # its process is gone
    assert runs["2_paper"].state == "running"
    assert runs["3_no_lrn"].state == "finished"
    data = build(list(runs.values()))
    assert {r["state"] for r in data["not_finished"]} == {"failed", "killed", "running"}
    paper = next(row for row in data["experiments"] if row["experiment"] == "paper")
    assert paper["finished"] == 0 and paper["test_top1"]["n"] == 0  # failed and running runs never enter means


def test_a_list_of_run_folders_and_one_that_does_not_exist(sweep, tmp_path):
    runs = read_runs([sweep / "0_paper", sweep / "1_no_lrn", tmp_path / "nowhere"])
    assert [r.state for r in runs] == ["finished", "finished", "missing"]
    assert runs[2].reason.endswith("no such folder")


def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys):
    proc = run_cli([f"out_dir={tmp_path}"], tmp_path, tmp_path, script=REPORT)  # the installed command
    assert proc.returncode == 2 and proc.stderr.startswith("error: runs not set")
    monkeypatch.chdir(tmp_path)  # the others: its main() in this process
    code, err = run_in_process("report", [f"runs={tmp_path / 'nope'}", f"out_dir={tmp_path}"], monkeypatch, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "no such folder" in err
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_MODE", "offline")
    code, err = run_in_process("report", [f"runs={tmp_path}", f"out_dir={tmp_path}", "--wandb"], monkeypatch, capsys)
    assert code == 2 and "--wandb" in err and err.count("\n") == 1
    code, err = run_in_process("report", ["runs=wandb:me/alexnet-lit/abl", f"out_dir={tmp_path}"], monkeypatch,
                               capsys)
    assert code == 2 and "needs W&B online" in err and err.count("\n") == 1


def test_paper_claims_have_a_section_each():
    claims = paper_claims()
    assert claims["baseline"]["top1"] == 40.7
    for name, claim in claims["ablations"].items():
        assert claim["section"] and claim["claim"] and claim["kind"] in ("number", "at_least", "worse", "overfit")
        assert (ROOT / "conf" / "experiment" / f"{name}.yaml").is_file(), name  # an experiment of that name exists


def test_wandb_report_object_builds_offline(sweep):
    pytest.importorskip("wandb_workspaces", reason="optional extra: pip install -e .[report]")
    from alexnet_lit.report.wandb_report import build_report

    data = build(read_runs([sweep]))
    report = build_report(data, "alexnet-lit", "me")
    assert report.title == "AlexNet ablations: tiny" and report.project == "alexnet-lit"
    grid = report.blocks[-1]
    assert grid.runsets[0].filters == "Group = 'tiny'"  # the sweep's W&B group (loggers.sweep_name)
    metrics = {m for panel in grid.panels if hasattr(panel, "metrics") for m in panel.metrics}
    assert {"test/top1_err", "test/top5_err", "val/top1_err", "val/top5_err"} <= metrics


def test_runs_from_a_wandb_group_through_the_public_api():
    """runs=wandb:ENTITY/PROJECT/GROUP reads W&B's Api().runs(...): config, state and history, as from folders
    (the Api is replaced by an object of the same shape: there is no W&B server here)."""
    from alexnet_lit.report.runs import read_wandb

    class Run:
        def __init__(self, id_, exp, seed, state, val):
            self.id, self.state, self.config, self.summary = id_, state, {"experiment_name": exp, "seed": seed}, \
                {"_runtime": 60.0}
            self.rows = [{"trainer/global_step": 9, "epoch": 0, "val/top1_err": val, "val/top5_err": 0.1, "_step": 3},
                         {"trainer/global_step": 9, "epoch": 0, "train/top1_err": 0.7, "train/top5_err": 0.2},
                         {"trainer/global_step": 0, "lr/weights": 0.01, "lr/biases": 0.01},
                         {"trainer/global_step": 19, "epoch": 1, "val/top1_err": val - 0.1,
                          "conv1/kernels": {"_type": "image"}},
                         {"trainer/global_step": 20, "epoch": 1, "test/top1_err": val - 0.12}]

        def scan_history(self):
            return self.rows

    class Api:
        def runs(self, path, filters=None):
            self.asked = (path, filters)
            return [Run("a", "paper", 0, "finished", 0.5), Run("b", "no_lrn", 0, "crashed", 0.6)]

    api = Api()
    runs = read_wandb("wandb:me/alexnet-lit/abl", api)
    assert api.asked == ("me/alexnet-lit", {"group": "abl"})
    paper, no_lrn = runs
    assert (paper.experiment, paper.seed, paper.state, no_lrn.state) == ("paper", 0, "finished", "killed")
    assert [e.val_top1 for e in paper.epochs] == pytest.approx([0.5, 0.4]) and paper.epochs[0].train_top1 == 0.7
    assert paper.epochs[0].lr == 0.01 and paper.test["test/top1_err"] == pytest.approx(0.38)
    assert paper.wall_s == 60.0


def test_effects_are_ablation_minus_baseline_with_the_standard_error_of_the_difference():
    from alexnet_lit.report.runs import Run

    def runs(name, errors):
        return [Run(None, name, s, "finished", test={"test/top1_err": e, "test/top5_err": e / 4})
                for s, e in enumerate(errors)]

    data = build(runs("paper", [0.40, 0.42, 0.44]) + runs("no_lrn", [0.45, 0.47, 0.49])
                 + runs("no_pca", [0.405, 0.425, 0.445]))
    lrn, pca = data["effects"]
    assert lrn["top1"] == pytest.approx(5.0) and lrn["top5"] == pytest.approx(1.25)
    assert lrn["se1"] == pytest.approx(((2.0**2 / 3) * 2) ** 0.5)  # sd 2 points on both sides, 3 seeds each
    assert lrn["agrees"] == "yes" and lrn["beyond_noise"].startswith("yes (3.1 SE)")
    assert pca["top1"] == pytest.approx(0.5) and pca["agrees"] == "sign only"  # "over 1%": not met
    assert pca["beyond_noise"].startswith("no")


def test_an_ablation_at_chance_did_not_train_and_is_never_counted_as_agreeing(tmp_path, monkeypatch):
    """The tanh runs of the last study: 90% error on 10 classes in every seed, far "worse" than the baseline,
    which the report once called "sign agrees: yes, beyond noise (39.4 SE)"."""
    from alexnet_lit.report.effects import shown
    from alexnet_lit.report.runs import Run
    from alexnet_lit.report.write import markdown

    def runs(name, errors):
        return [Run(tmp_path / f"{name}{s}", name, s, "finished", num_classes=10,
                    test={"test/top1_err": e, "test/top5_err": e / 2}) for s, e in enumerate(errors)]

    data = build(runs("paper", [0.40, 0.42, 0.44]) + runs("tanh", [0.90, 0.899, 0.9005])
                 + runs("no_lrn", [0.45, 0.47, 0.49]))
    tanh, lrn = data["effects"]
    assert tanh["agrees"].startswith("did not train (ablation: 3 of 3 runs") and "not counted" in tanh["beyond_noise"]
    assert lrn["agrees"] == "yes"  # 45% on 10 classes trained
    assert lrn["resolvable"] == pytest.approx(2 * lrn["se1"])
    assert data["smallest_resolvable"] == pytest.approx(2 * 2.0 * (2 / 3) ** 0.5)  # the baseline's sd is 2 points
    assert [r["did_not_train"] for r in data["runs"]] == [False] * 3 + [True] * 3 + [False] * 3
    monkeypatch.chdir(tmp_path)
    text = markdown(build(runs("paper", [0.4, 0.42]) + runs("tanh", [0.9, 0.9])), [], "alexnet-report")
    assert str(tmp_path) not in text and "| paper0 |" in text and shown(tmp_path / "x") == "x"
    assert "did not train" in text and "smallest difference this study resolves" in text


def test_training_speed_is_steps_to_the_baselines_final_training_error():
    from alexnet_lit.report.runs import Epoch, Run

    def run(name, seed, errors):  # train top-1 per epoch, 100 steps an epoch
        return Run(None, name, seed, "finished", epochs=[Epoch(i, 100 * (i + 1), train_top1=e)
                                                         for i, e in enumerate(errors)])

    data = build([run("paper", 0, [0.7, 0.5, 0.40]), run("paper", 1, [0.7, 0.5, 0.44]),  # ends at 42% on average
                  run("no_lrn", 0, [0.6, 0.42, 0.3]), run("no_lrn", 1, [0.5, 0.41, 0.3]),
                  run("tanh", 0, [0.9, 0.9, 0.9])])
    sp = data["speed"]
    assert sp["level"] == pytest.approx(42.0)
    assert sp["experiments"]["paper"] == {"mean_steps": 300, "reached": 1, "runs": 2}  # seed 1 ends at 44%
    assert sp["experiments"]["no_lrn"] == {"mean_steps": 200, "reached": 2, "runs": 2}
    assert sp["experiments"]["tanh"]["mean_steps"] is None and sp["experiments"]["tanh"]["reached"] == 0
