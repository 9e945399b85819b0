"""Thin entry points: compose the Hydra config in ``conf/``, check it, hand it to the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from alexnet_lit import config  # noqa: F401  (registers the structured-config schemas in Hydra's ConfigStore)


def config_dir() -> str:
    """``conf/`` of the source checkout (editable install), the copy inside the wheel, or $ALEXNET_LIT_CONF."""
    candidates = [os.environ.get("ALEXNET_LIT_CONF"), Path(__file__).resolve().parents[3] / "conf",
                  Path(__file__).resolve().parents[1] / "conf"]
    for c in candidates:
        if c and (Path(c) / "train.yaml").is_file():
            return str(Path(c).resolve())
    raise SystemExit("alexnet-lit: cannot find the config folder (conf/train.yaml); set ALEXNET_LIT_CONF=/path/to/conf")


# Groups that are not in train.yaml's defaults list: a run appends them with +GROUP=OPTION, as Hydra documents
# for experiments. debug comes last, so that it shrinks whatever the experiment set.
APPENDED_GROUPS = ("experiment", "sweep", "debug")


def check_argv(argv: list[str]) -> str | None:
    """The one mistake Hydra reports in many lines: an appended group given without its +, or +debug before
    +experiment (Hydra merges appended groups in command-line order). Returns the error, or None."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    for a in args:
        group = a.split("=", 1)[0]
        if group in APPENDED_GROUPS:
            return f"{a}: add a +, as in +{a} (Hydra appends the {group} group; train.yaml does not list it)"
    order = [a.split("=", 1)[0] for a in args if a.startswith(("+experiment=", "+debug="))]
    if "+debug" in order and "+experiment" in order and order.index("+debug") < order.index("+experiment"):
        return "put +debug=... after +experiment=...: Hydra applies appended groups in command-line order"
    return None


def user_errors() -> tuple[type[Exception], ...]:
    """Errors in what the user gave (config, paths, data): one line naming the key or file, exit 2."""
    from alexnet_lit.config import ConfigError
    from alexnet_lit.data.classes import UnknownClassFolder
    from alexnet_lit.data.sources import MissingData
    from alexnet_lit.data.store import MissingStore

    return ConfigError, MissingData, MissingStore, UnknownClassFolder


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def exit_on_user_error(fn, *args):
    """Run ``fn(*args)``; a user error prints ``error: ...`` (no traceback) and exits 2."""
    try:
        return fn(*args)
    except user_errors() as e:
        fail(str(e))


def hydra_entry_point(hydra_main) -> None:
    """Check the command line for the mistakes above, then run the Hydra app."""
    if message := check_argv(sys.argv[1:]):
        fail(message)
    hydra_main()


def check(cfg: DictConfig, stats_given: bool = False) -> None:
    """Every check that needs no data, in its one place: keys across groups (config.validate) and the network's
    geometry (models.alexnet.check). Entry points call this first."""
    from alexnet_lit.config import ModelConfig, build, plain, validate
    from alexnet_lit.models.alexnet import check as check_network

    validate(cfg, stats_given)
    check_network(build(ModelConfig, plain(cfg.model), "model"))
