"""How a setting is declared and checked: ``ranged`` (a default with its allowed range), ``build`` (values checked
against a schema, the one way constructors turn keyword arguments into a config), one-line error messages."""

from __future__ import annotations

from dataclasses import field, fields, is_dataclass
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration that composes but cannot run; the message names the keys and the fix."""


def ranged(default: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> Any:
    """A dataclass field with its default and its allowed range (None = unbounded; open ends exclude the bound).
    ``build`` checks it, so the range lives next to the default and nowhere else."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open)})


def _range_text(lo, hi, lo_open, hi_open) -> str:
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    if hi is None:
        return f"{'>' if lo_open else '>='} {num(lo)}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {num(hi)}"
    return f"in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"


def check_ranges(obj: Any, key: str) -> None:
    """Every ``ranged`` field of a dataclass instance (recursively) within its range; the error names the key."""
    for f in fields(obj):
        value, name = getattr(obj, f.name), f"{key}.{f.name}" if key else f.name
        if is_dataclass(value):
            check_ranges(value, name)
        else:
            _check_value(f, value, name)


def check_field(schema: type, field_name: str, value: Any, key: str) -> None:
    """One ``ranged`` field of ``schema`` (for a key checked on its own, like the top-level seed)."""
    _check_value(next(f for f in fields(schema) if f.name == field_name), value, key)


def _check_value(f: Any, value: Any, name: str) -> None:
    if "range" in f.metadata and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, lo_open, hi_open = f.metadata["range"]
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above or value != value:  # NaN is out of every range
            raise ConfigError(f"{name}={value}: must be {_range_text(lo, hi, lo_open, hi_open)}")



T = TypeVar("T")


def build(schema: type[T], values: Any = None, key: str = "") -> T:
    """``values`` (a dict, a DictConfig, or already a ``schema``) checked against ``schema`` and filled with its
    defaults: the one way constructors turn keyword arguments into a config. Errors name the key."""
    if not isinstance(values, schema):
        try:
            node = OmegaConf.merge(OmegaConf.structured(schema), values or {})
            values = OmegaConf.to_object(node)
        except OmegaConfBaseException as e:
            raise ConfigError(describe_error(e, key)) from None
    check_ranges(values, key)
    return values


def describe_error(e: OmegaConfBaseException, key: str = "") -> str:
    """One line for an OmegaConf error: the full key, what is wrong, what to do."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue

    name = ".".join(k for k in (key, str(getattr(e, "full_key", None) or "")) if k)
    message = (getattr(e, "msg", None) or str(e)).splitlines()[0]
    if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
        message += " (no such setting: `python train.py --cfg job` lists every key)"
    elif isinstance(e, MissingMandatoryValue):
        message = "missing: give it on the command line"
    return f"{name}: {message}" if name else message


def plain(cfg: Any) -> dict[str, Any]:
    """A config (DictConfig or dataclass) as plain Python containers, enums as strings: what checkpoints keep."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True, throw_on_missing=True)
