"""How every entry point (cli/) behaves: the config found, the command line checked, errors and signals turned into
one line and an exit code (``hydra_entry_point``, ``exit_on_user_error``):
1. The command line's own mistakes (an appended group without its +) are caught first.
2. Preflight: the config is composed with Hydra's compose API and every check that needs no work runs (keys,
   types, ranges, the network's geometry, files and folders the run will read or write, the checkpoint to resume
   from). A user error is one line ``error: <key or file>: <what is wrong>; <what to do>`` on stderr and exit 2,
   before Hydra creates a run folder, data is generated or a W&B run starts.
3. Hydra runs the app. A user error found later (a bad image met during training) is the same one line and
   exit 2; the run folder it leaves is removed if it holds nothing but Hydra's own files. Ctrl-C exits 130 and
   SIGTERM 143, after ``finally`` blocks and Lightning's exception hooks have run. In a sweep (``-m``) a job with
   a user error does not stop the others: each failure is reported at the end, and the sweep exits 2.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from alexnet_lit.config import ConfigError, describe_error
from alexnet_lit.data.classes import UnknownClassFolder
from alexnet_lit.data.jpeg import BadSample
from alexnet_lit.data.prepare import StoreMismatch
from alexnet_lit.data.sources import DecodeError, MissingData
from alexnet_lit.data.store import MissingStore
from alexnet_lit.paths import SWEEP_STARTED, register_resolvers, start_time
from alexnet_lit.quiet import quiet
from alexnet_lit.signals import RunFailed, Signalled, install_handlers

register_resolvers()  # ${alexnet_run_folder:...} in conf/hydra/default.yaml, for preflight and Hydra alike


def config_dir() -> str:
    """``conf/`` of the source checkout (editable install), the copy inside the wheel, or $ALEXNET_LIT_CONF."""
    candidates = [os.environ.get("ALEXNET_LIT_CONF"), Path(__file__).resolve().parents[2] / "conf",
                  Path(__file__).resolve().parent / "conf"]
    for c in candidates:
        if c and (Path(c) / "train.yaml").is_file():
            return str(Path(c).resolve())
    raise SystemExit("alexnet-lit: cannot find the config folder (conf/train.yaml); set ALEXNET_LIT_CONF=/path/to/conf")


# Groups that are not in train.yaml's defaults list: a run appends them with +GROUP=OPTION, as Hydra documents
# for experiments. debug comes last, so that it shrinks whatever the experiment set.
APPENDED_GROUPS = ("experiment", "sweep", "proxy", "debug")


def check_argv(argv: list[str]) -> str | None:
    """The one mistake Hydra reports in many lines: an appended group given without its +, or +debug / +proxy
    before +experiment (Hydra merges appended groups in command-line order). Returns the error, or None."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    for a in args:
        group = a.split("=", 1)[0]
        if group in APPENDED_GROUPS:
            return f"{a}: add a +, as in +{a} (Hydra appends the {group} group; train.yaml does not list it)"
    order = [a.split("=", 1)[0] for a in args if a.startswith(("+experiment=", "+proxy=", "+debug="))]
    for later in ("+proxy", "+debug"):
        if later in order and "+experiment" in order and order.index(later) < order.index("+experiment"):
            return f"put {later}=... after +experiment=...: Hydra applies appended groups in command-line order"
    return None


# --- user errors -----------------------------------------------------------------------------------------------
def user_errors() -> tuple[type[Exception], ...]:
    """Errors in what the user gave (config, paths, data): one line naming the key or file, exit 2."""
    return ConfigError, MissingData, MissingStore, UnknownClassFolder, DecodeError, StoreMismatch, BadSample


def one_line(e: BaseException) -> str:
    """The error's own message on one line. An error raised in a DataLoader worker arrives wrapped in the worker's
    traceback; its last line is the message."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and "Original Traceback" in str(e):
        return re.sub(r"^[\w.]+: ", "", lines[-1])  # "pkg.module.DecodeError: <message>"
    return "; ".join(line.strip() for line in lines) if lines else type(e).__name__


def say(line: str) -> None:
    """One line on stderr in one write: DDP ranks share the stream, and print's separate newline interleaves."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def fail(message: str) -> None:
    say(f"error: {message}")
    sys.exit(2)


_SWEEP_FAILURES: list[str] = []
_SWEEP_RUN_FAILED: list[bool] = []  # a job failed in its run (exit 1), not by its input (exit 2)


def _hydra_state() -> tuple[str | None, bool, list[str]]:
    """(this job's output folder, whether Hydra runs a sweep, the job's overrides); (None, False, []) outside."""
    try:
        hc = HydraConfig.get()
        return hc.runtime.output_dir, hc.mode == RunMode.MULTIRUN, list(hc.overrides.task)
    except ValueError:
        return None, False, []


def discard_run_dir(output_dir: str | None) -> None:
    """A run that failed before doing anything leaves no folder behind (Hydra made it with only .hydra/ in it)."""
    if not output_dir or not os.path.isdir(output_dir):
        return
    leftovers = [p for p in Path(output_dir).iterdir() if p.name != ".hydra" and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(output_dir, ignore_errors=True)


def exit_on_user_error(fn, *args):
    """Run ``fn(*args)``; a user error prints ``error: ...`` (no traceback) and exits 2 (in a sweep: recorded and
    reported at the end); a signal exits 128 + its number."""
    output_dir, sweeping, overrides = _hydra_state()
    install_handlers()  # again: a job of a launcher (submitit's) runs in a process of its own, with its handlers
    quiet()
    try:
        return fn(*args)
    except user_errors() as e:
        discard_run_dir(output_dir)
        if sweeping:
            _SWEEP_FAILURES.append(f"sweep job {' '.join(overrides)}: {one_line(e)}")
            return None
        fail(one_line(e))
    except RunFailed as e:
        if sweeping:  # the other jobs go on; the sweep exits 1 at the end
            _SWEEP_FAILURES.append(f"sweep job {' '.join(overrides)} failed: {one_line(e)}")
            _SWEEP_RUN_FAILED.append(True)
            return None
        say(f"error: {one_line(e)}")
        stop_worker_processes()
        sys.exit(1)
    except Signalled as s:
        say(f"stopped by {s} (exit {s.exit_code})")
        stop_worker_processes()
        sys.exit(s.exit_code)


def stop_worker_processes() -> None:
    """DataLoader workers of an iterator cut short (a signal during validation: the iterator stays referenced by
    the exception) wait for work forever, and the interpreter's exit would wait for them; they ignore SIGTERM
    (signals.py), so they are killed. Only this process's multiprocessing children: DDP ranks are not among them."""
    children = multiprocessing.active_children()
    if children:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler would raise for each worker killed here
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=5)


def preflight(config_name: str, argv: list[str], checker) -> None:
    """Compose the config as Hydra will and run ``checker(cfg)`` on it, before Hydra creates anything. Skipped
    for sweeps and Hydra's own flags (--cfg, --help, -m ...): a sweep's jobs are checked one by one."""
    if any(a.startswith("-") for a in argv) or checker is None:
        return
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name, overrides=argv, return_hydra_config=True)
            if str(cfg.hydra.get("mode")) == "RunMode.MULTIRUN":  # +sweep=...: its jobs are checked one by one
                return
            with open_dict(cfg):  # as Hydra's run_job does, so ${hydra:runtime.output_dir} resolves
                cfg.hydra.runtime.output_dir = os.path.abspath(str(cfg.hydra.run.dir))
            HydraConfig.instance().set_config(cfg)
            task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            checker(task)
    except HydraException as e:
        cause = e.__cause__
        message = describe_error(cause) if isinstance(cause, OmegaConfBaseException) else composition_message(e)
        fail(message)
    except OmegaConfBaseException as e:
        fail(describe_error(e))
    except user_errors() as e:
        fail(one_line(e))


def composition_message(e: Exception) -> str:
    """Hydra's multi-line composition errors ("Could not find 'experiment/x'", its options below) on one line."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    if len(lines) > 1 and lines[1].startswith("Available options"):
        return f"{lines[0]}; available: {', '.join(lines[2:])}"
    return "; ".join(lines)


def hydra_entry_point(hydra_main, config_name: str = "train", checker=None) -> None:
    """Check the command line and the composed config, then run the Hydra app with the signal exits."""
    if message := check_argv(sys.argv[1:]):
        fail(message)
    install_handlers()
    quiet()
    try:
        preflight(config_name, sys.argv[1:], checker)
    except Signalled as s:
        sys.exit(s.exit_code)
    _SWEEP_FAILURES.clear()
    _SWEEP_RUN_FAILED.clear()
    pinned = SWEEP_STARTED not in os.environ
    if pinned:  # one sweep folder for jobs that resolve it in processes of their own (paths.sweep_folder)
        os.environ[SWEEP_STARTED] = start_time()
    try:
        hydra_main()
    finally:
        if pinned:
            os.environ.pop(SWEEP_STARTED, None)
    if _SWEEP_FAILURES:
        for line in _SWEEP_FAILURES:
            say(f"error: {line}")
        sys.exit(1 if _SWEEP_RUN_FAILED else 2)
