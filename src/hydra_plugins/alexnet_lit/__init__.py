"""Hydra imports every module under ``hydra_plugins`` when it starts, so importing this one registers the
structured-config schemas (``train_schema``, ``prepare_schema``) before any config is composed: through the
entry points, ``hydra.compose`` in tests or notebooks, whatever was imported first."""

from alexnet_lit.config import register

register()
