"""Check exact resume as a user would, and time a full-size checkpoint write.

    python experiments/resume_check.py                       # run A; run B SIGKILLed mid-epoch, resumed; compare
    python experiments/resume_check.py run +experiment=quickstart trainer.max_epochs=2 checkpoint_every_n_steps=10
    python experiments/resume_check.py compare A.ckpt B.ckpt  # every tensor of two checkpoints (exit 1 if any differs)
    python experiments/resume_check.py write-time            # the full-size model's checkpoint: bytes and seconds
    make check-resume                                        # the first one

The kill comes from outside, at whatever moment the process has reached once a step checkpoint of the second
epoch exists: SIGKILL, no warning, as a lost node. Default: the tiny config (conf/debug/tiny.yaml), 3 epochs of 7
steps, a step checkpoint every 2 steps, 2 workers; `run OVERRIDES` checks any other config (it needs at least two
epochs and step checkpoints within the second). The two runs go to logs/resume-check/runs/{a,b}.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["+debug=tiny", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_epochs=3",
        "checkpoint_every_n_steps=2", "data.num_workers=2"]
FIXED = ["test=false", "experiment_name=resume-check"]


def compare(a: str, b: str) -> int:
    sa, sb = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    tensors = sorted(sa["state_dict"])
    worst = {k: (sa["state_dict"][k].double() - sb["state_dict"][k].double()).abs().max().item() for k in tensors}
    equal = sum(torch.equal(sa["state_dict"][k], sb["state_dict"][k]) for k in tensors)
    moments = [(s, t) for s, t in zip(sa["optimizer_states"][0]["state"].values(),
                                     sb["optimizer_states"][0]["state"].values())]
    optimizer_equal = all(torch.equal(s[k], t[k]) for s, t in moments for k in s)
    print(f"steps {sa['global_step']} and {sb['global_step']}; {equal} of {len(tensors)} tensors equal, max abs "
          f"difference {max(worst.values()):.3g}; optimizer state {'equal' if optimizer_equal else 'DIFFERENT'}")
    same = equal == len(tensors) and optimizer_equal and sa["global_step"] == sb["global_step"]
    return 0 if same else 1


def train(config: list[str], run_id: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "train.py"), *config, *FIXED, f"run_id={run_id}", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def check(config: list[str]) -> int:
    runs = ROOT / "logs" / "resume-check" / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    a = train(config, "a")
    b = train(config, "b")
    step = runs / "b" / "checkpoints" / "step.ckpt"
    killed_at = None
    while b.poll() is None:
        if step.is_file() and (state := torch.load(step, weights_only=True))["epoch"] >= 1:
            b.send_signal(signal.SIGKILL)
            b.wait()
            killed_at = state["global_step"]
            break
        time.sleep(0.01)
    if killed_at is None:
        print("run b ended before a step checkpoint of its second epoch; more epochs or more frequent "
              "checkpoint_every_n_steps", file=sys.stderr)
        return 2
    print(f"run b SIGKILLed after its step checkpoint at step {killed_at} (epoch 1); resuming")
    resumed = train(config, "b", "ckpt_path=last")
    for name, proc in (("a", a), ("b resumed", resumed)):
        if proc.wait() != 0:
            print(f"run {name} failed:\n{proc.stderr.read()[-2000:]}", file=sys.stderr)
            return 2
    return compare(str(runs / "a" / "checkpoints" / "last.ckpt"), str(runs / "b" / "checkpoints" / "last.ckpt"))


def write_time() -> int:
    """The checkpoint of the full network (61M parameters + one momentum buffer each), written as train.py
    writes it (AtomicCheckpointIO: temporary file in the folder, fsync, rename), three times."""
    from alexnet_lit.checkpoint import AtomicCheckpointIO
    from alexnet_lit.machine import cpu_name
    from alexnet_lit.module import AlexNetModule

    model = AlexNetModule()
    optimizer = model.configure_optimizers()["optimizer"]
    for p in model.parameters():
        optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
    state = {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()], "global_step": 0}
    folder = Path(tempfile.mkdtemp(dir=os.environ.get("CHECKPOINT_DIR", ROOT / "logs")))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        AtomicCheckpointIO().save_checkpoint(state, folder / "last.ckpt")
        times.append(time.perf_counter() - start)
    size = (folder / "last.ckpt").stat().st_size
    shutil.rmtree(folder)
    print(f"cpu: {cpu_name()}; folder: {folder.parent}; checkpoint "
          f"{size / 2**20:.0f} MiB; write {min(times):.2f} s best of 3 ({', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["compare"] and len(args) == 3:
        sys.exit(compare(args[1], args[2]))
    if args == ["write-time"]:
        sys.exit(write_time())
    if not args:
        sys.exit(check(TINY))
    if args[:1] == ["run"] and len(args) > 1:
        sys.exit(check(args[1:]))
    print("error: usage: resume_check.py [run OVERRIDES... | compare A.ckpt B.ckpt | write-time]", file=sys.stderr)
    sys.exit(2)
