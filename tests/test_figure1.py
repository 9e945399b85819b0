"""experiments/figure1/figure1.py: the learning-rate search of the paper's protocol (on a model of a run, no
training), and one real run of +experiment=figure1 trained, read back from its CSV and extended."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "experiments" / "figure1"))
import figure1  # noqa: E402


def model_run(best_lr: float, best_epochs: int, diverge_above: float, calls: list):
    """A run whose epochs to 25% grow by 2 per factor of 2 away from ``best_lr``; non-finite above
    ``diverge_above``; capped like a real one (no epoch past ``cap``)."""
    def run(lr: float, cap: int) -> dict:
        calls.append((lr, cap))
        if lr > diverge_above:
            return {"lr": lr, "errors": [0.9], "reached": None, "diverged": True}
        need = best_epochs + 2 * round(abs(math.log2(lr / best_lr)))
        errors = [0.9 - 0.65 * min(e, need) / need - (0.01 if e >= need else 0) for e in range(1, min(need, cap) + 1)]
        return {"lr": lr, "errors": errors, "reached": figure1.reached(errors), "diverged": False}
    return run


@pytest.mark.parametrize("best_lr", [0.008, 0.001, 0.000125])
def test_search_brackets_the_fastest_rate_and_caps_the_rest(best_lr):
    calls: list = []
    best, grid = figure1.search({"lr0": 0.001, "max_epochs": 100}, model_run(best_lr, 5, 0.02, calls))
    assert best["lr"] == best_lr and best["reached"] == 5 and best["interior"]
    rates = [r["lr"] for r in grid]
    assert figure1.rate(best_lr / 2) in rates and figure1.rate(best_lr * 2) in rates
    assert len(rates) == len(set(rates)) == len(calls)
    # a run after the first one that reached 25% is capped at the fastest epochs so far
    first = next(i for i, (lr, _) in enumerate(calls) if grid[rates.index(lr)]["reached"])
    assert all(cap <= grid[rates.index(calls[first][0])]["reached"] for _, cap in calls[first + 1:])


def test_a_diverged_rate_is_slower_than_any_and_bounds_the_search():
    calls: list = []
    best, grid = figure1.search({"lr0": 0.001, "max_epochs": 100}, model_run(0.016, 5, 0.004, calls))
    assert best["lr"] == 0.004 and grid[-1]["diverged"] and grid[-1]["lr"] == 0.008


def test_a_diverged_run_never_wins_on_the_epochs_it_logged_before_its_loss_went_non_finite():
    def run(lr: float, cap: int) -> dict:
        errors = [0.3 if lr > 0.001 else 0.6 + 100 * (0.001 - lr)] * cap  # nothing gets below 25% within max_epochs=2
        return {"lr": lr, "errors": errors, "reached": None, "diverged": lr > 0.001}
    best, grid = figure1.search({"lr0": 0.001, "max_epochs": 2}, run)
    assert best["lr"] == 0.001 and not best["diverged"]


def test_ratio_of_seeds_and_bounds():
    relu = [{"reached": 6, "errors": [0] * 6}, {"reached": 8, "errors": [0] * 8}]
    tanh = [{"reached": 35, "errors": [0] * 35}, {"reached": None, "errors": [0] * 50}]
    r = figure1.ratio(tanh, relu)
    assert r["value"] == pytest.approx(42.5 / 7) and r["bound"] and r["text"].startswith(">= 6.1")
    assert r["low"] == pytest.approx(35 / 8) and r["high"] == pytest.approx(50 / 6)
    assert figure1.ratio(tanh, [{"reached": None, "errors": [0] * 9}])["value"] is None


def fake_study(tmp_path) -> dict:
    """The whole study on modelled runs (relu fastest at 0.004 in 5 epochs, tanh at 0.001 in 30), published."""
    def run(act: str, lr: float, seed: int, cap: int) -> dict:
        fast, best = (5, 0.004) if act == "relu" else (30, 0.001)
        r = model_run(best, fast + seed, 0.05, [])(lr, cap)
        return {**r, "activation": act, "seed": seed, "run_id": f"{act}-{lr:g}-{seed}", "status": "finished",
                "cap": cap, "wall_s": 1.0}

    opts = {**figure1.STUDY, "activations": "relu,tanh", "max_epochs": 60, "store": str(tmp_path), "t0": 0.0,
            "argv": [], "machine": "m", "save": lambda results: None}
    return figure1.publish(figure1.study(opts, run), opts)


def test_results_json_has_every_run_the_fastest_rates_and_the_ratios(tmp_path):
    out = fake_study(tmp_path)
    assert (out["net"], out["train_images"], out["threshold"]) == ("cifar_80sec", 50000, 0.25)
    assert out["best"]["relu"]["lr"] == 0.004 and out["best"]["relu"]["epochs"] == [5, 6, 7]
    assert out["best"]["tanh"]["lr"] == 0.001 and out["best"]["tanh"]["epochs"] == [30, 31, 32]
    assert out["grid_interior"] == {"relu": True, "tanh": True}
    r = out["ratio"]["tanh"]
    assert r["paper_protocol"] == pytest.approx(31 / 6) and r["min"] == pytest.approx(30 / 7)
    assert r["max"] == pytest.approx(32 / 5) and r["naive"] == pytest.approx(34 / 5)  # tanh at 0.004: 30 + 2 * 2
    assert out["grid"]["tanh"] == [0.0005, 0.001, 0.002, 0.004, 0.008]
    first = next(x for x in out["runs"] if x["run_id"] == "tanh-0.004-0")  # started at the ReLU's fastest rate
    assert first["cap"] == 60 and first["epochs_to_threshold"] == 34
    ids = [x["run_id"] for x in out["runs"]]
    assert len(ids) == len(set(ids)) and {"tanh-0.004-0", "relu-0.004-2"} <= set(ids)
    assert out["naive"]["tanh"] == "tanh-0.004-0"
    assert out["command"] == ("python train.py +experiment=figure1 model=cifar_80sec model.activation=relu "
                              "model.optimizer.lr=0.004 seed=0")
    figure1.plot(out, tmp_path)
    assert (tmp_path / "figure1.png").stat().st_size > 10_000


def test_every_run_is_saved_as_soon_as_it_ends(tmp_path):
    """A study cut short mid-search must still have its finished runs in results.json (they carry over)."""
    saved: list[int] = []
    opts = {**figure1.STUDY, "activations": "relu", "seeds": "0", "store": str(tmp_path), "t0": 0.0, "argv": [],
            "machine": "m"}
    opts["save"] = lambda results: saved.append(len(figure1.publish(results, opts)["runs"]))

    def run(act: str, lr: float, seed: int, cap: int) -> dict:
        r = model_run(0.004, 5, 0.05, [])(lr, cap)
        return {**r, "activation": act, "seed": seed, "run_id": f"{act}-{lr:g}-{seed}", "status": "finished",
                "cap": cap}

    figure1.study(opts, run)
    assert saved[:3] == [1, 2, 3]


def test_the_ratio_of_an_activation_is_saved_before_the_next_activation_starts(tmp_path):
    """A study stopped in lecun_tanh's search (a SIGTERM: exit 143) has tanh's ratios in its results.json."""
    saved: list[dict] = []
    opts = {**figure1.STUDY, "activations": "relu,tanh,lecun_tanh", "max_epochs": 60, "store": str(tmp_path),
            "t0": 0.0, "argv": [], "machine": "m"}
    opts["save"] = lambda results: saved.append(figure1.publish(results, opts))

    def run(act: str, lr: float, seed: int, cap: int) -> dict:
        if act == "lecun_tanh":
            raise SystemExit(143)
        fast, best = (5, 0.004) if act == "relu" else (30, 0.001)
        r = model_run(best, fast + seed, 0.05, [])(lr, cap)
        return {**r, "activation": act, "seed": seed, "run_id": f"{act}-{lr:g}-{seed}", "status": "finished",
                "cap": cap}

    with pytest.raises(SystemExit):
        figure1.study(opts, run)
    assert saved[-1]["ratio"]["tanh"]["paper_protocol"] == pytest.approx(31 / 6)
    assert saved[-1]["ratio"]["tanh"]["naive"] == pytest.approx(34 / 5) and saved[-1]["naive"]["tanh"] == "tanh-0.004-0"


def test_a_run_met_twice_is_published_once_with_its_longest_record(tmp_path):
    def rec(n: int) -> dict:
        return {"run_id": "a", "activation": "tanh", "lr": 0.01, "seed": 0, "errors": [0.5] * n, "reached": None,
                "diverged": False, "status": "finished", "cap": n}
    results = {"protocol": {}, "grid": {"tanh": [rec(3)]}, "best": {}, "seeds": {"tanh": [rec(3)]},
               "naive": {"tanh": rec(5)}, "ratio": {}}
    opts = {**figure1.STUDY, "store": str(tmp_path), "t0": 0.0, "argv": [], "machine": "m"}
    (only,) = figure1.publish(results, opts)["runs"]
    assert len(only["train_error_per_epoch"]) == 5 and only["cap"] == 5


def test_options_refuse_unknown_words(capsys):
    with pytest.raises(SystemExit, match="^2$"):
        figure1.options(["lrs=0.1"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown option 'lrs'")
    assert figure1.options(["quick"])["images"] == 10000


def test_another_nets_row_writes_its_own_results_never_the_80sec_studys():
    assert figure1.options([])["out_dir"] == str(figure1.HERE)
    assert figure1.options(["net=cifar_19pct"])["out_dir"] == str(figure1.HERE / "cifar_19pct")
    assert figure1.options(["net=cifar_19pct", "out_dir=/x"])["out_dir"] == "/x"


def test_a_real_run_is_read_back_and_extended(tmp_path, cache_dir):
    """+experiment=figure1 through train.py (tiny data): its epochs from metrics.csv, then one more epoch by
    resuming its last checkpoint, not by training again."""
    opts = {**figure1.STUDY, "images": 10000, "log_dir": str(tmp_path), "store": str(tmp_path / "unused"),
            "extra": f"+debug=tiny data.cache_dir={cache_dir}"}
    one = figure1.train(opts, "relu", 0.01, 0, 1)
    assert one["status"] == "finished" and len(one["errors"]) == 1 and 0 < one["errors"][0] <= 1
    two = figure1.train(opts, "relu", 0.01, 0, 2)
    assert two["errors"][0] == one["errors"][0] and len(two["errors"]) == 2
    folder = tmp_path / "figure1" / "runs" / two["run_id"]
    assert '"segments": 2' in (folder / "run.json").read_text()
    again = figure1.train(opts, "relu", 0.01, 0, 2)  # finished to 2 epochs: read, not run
    assert again["wall_s"] == two["wall_s"]
    # on another machine (logs/ is not committed): the run comes from results.json, not from training again
    published = {"run_id": two["run_id"], "train_error_per_epoch": two["errors"], "status": "finished",
                 "diverged": False, "wall_s": two["wall_s"]}
    (tmp_path / "results.json").write_text(json.dumps({"runs": [published]}))
    shutil.rmtree(folder)
    opts["earlier"] = figure1.earlier(tmp_path)
    kept = figure1.train(opts, "relu", 0.01, 0, 2)
    assert kept["errors"] == two["errors"] and kept["wall_s"] == two["wall_s"] and not folder.exists()


def test_sigterm_to_a_study_stops_its_run_with_a_checkpoint_and_the_study_exits_143(tmp_path, cache_dir):
    """The drivers' launch(): the run gets the SIGTERM (it checkpoints, run.json interrupted), the study exits 143
    and does not start the next run."""
    import json
    import os
    import signal
    import subprocess
    import time

    code = (f"import sys; sys.path.insert(0, {str(Path(figure1.__file__).parents[1])!r}); import studies; "
            f"studies.launch('quickstart', 'r', ['+debug=tiny', 'trainer.max_epochs=1000', 'test=false', "
            f"'+logger.csv.flush_logs_every_n_steps=1', 'data.cache_dir={cache_dir}'], {str(tmp_path)!r}); "
            f"print('next run')")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=figure1.ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "WANDB_MODE": "offline"})
    record = tmp_path / "quickstart" / "runs" / "r" / "run.json"
    deadline = time.monotonic() + 120  # training has begun once the CSV has rows (a signal before: nothing to save)
    while time.monotonic() < deadline and not (record.parent / "csv" / "metrics.csv").is_file():
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "next run" not in out
    assert json.loads(record.read_text())["status"] == "interrupted"
    assert any((record.parent / "checkpoints").glob("*.ckpt"))


def test_a_parked_run_comes_back_where_its_folder_is_missing_and_resumes(tmp_path):
    """park: an unfinished run's newest checkpoint, CSV, run.json and .hydra/ to the experiment's folder (to be
    committed); unpark: back into logs/ on another machine, never over a folder that is there."""
    import studies

    logs, dest = tmp_path / "logs", tmp_path / "parked"
    for rid, status in (("cut", "interrupted"), ("done", "finished")):
        run = logs / "figure1" / "runs" / rid
        (run / "checkpoints").mkdir(parents=True)
        (run / "csv").mkdir()
        (run / "checkpoints" / "step.ckpt").write_bytes(b"old")
        (run / "checkpoints" / "interrupted.ckpt").write_bytes(b"new")
        (run / "csv" / "metrics.csv").write_text("epoch,train/top1_err\n0,0.6\n")
        (run / "run.json").write_text(json.dumps({"status": status}))
    assert studies.park(logs, "figure1", dest) == ["cut"]
    assert sorted(p.name for p in (dest / "cut" / "checkpoints").iterdir()) == ["interrupted.ckpt"]
    other = tmp_path / "other-machine"
    assert studies.unpark(dest, other, "figure1") == ["cut"]
    back = other / "figure1" / "runs" / "cut"
    assert (back / "checkpoints" / "interrupted.ckpt").read_bytes() == b"new"
    assert (back / "csv" / "metrics.csv").read_text().endswith("0.6\n")
    assert studies.unpark(dest, other, "figure1") == []  # there already: left as it is
