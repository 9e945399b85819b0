"""Thin entry points: compose the Hydra config in ``conf/``, validate it, hand it to the library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alexnet_lit import config  # noqa: F401  (registers the structured-config schemas in Hydra's ConfigStore)


def config_dir() -> str:
    """``conf/`` of the source checkout (editable install), the copy inside the wheel, or $ALEXNET_LIT_CONF."""
    candidates = [os.environ.get("ALEXNET_LIT_CONF"), Path(__file__).resolve().parents[3] / "conf",
                  Path(__file__).resolve().parents[1] / "conf"]
    for c in candidates:
        if c and (Path(c) / "train.yaml").is_file():
            return str(Path(c).resolve())
    raise SystemExit("alexnet-lit: cannot find the config folder (conf/train.yaml); set ALEXNET_LIT_CONF=/path/to/conf")


OPTIONAL_GROUPS = ("experiment", "sweep")  # listed as `group: null` in train.yaml's defaults


def user_errors() -> tuple[type[Exception], ...]:
    """Errors in what the user gave (config, paths, data): one line naming the key or file, exit 2."""
    from alexnet_lit.config import ConfigError
    from alexnet_lit.data.classes import UnknownClassFolder
    from alexnet_lit.data.sources import MissingData
    from alexnet_lit.data.store import MissingStore

    return ConfigError, MissingData, MissingStore, UnknownClassFolder


def exit_on_user_error(fn, *args):
    """Run ``fn(*args)``; a user error prints ``error: ...`` (no traceback) and exits 2."""
    try:
        return fn(*args)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def normalize_argv() -> None:
    """Accept both ``+experiment=x`` and ``experiment=x`` (likewise ``sweep``): train.yaml lists
    ``experiment: null`` in its defaults, where Hydra itself only accepts the second form."""
    plus = tuple(f"+{g}=" for g in OPTIONAL_GROUPS)
    sys.argv = [a[1:] if a.startswith(plus) else a for a in sys.argv]
