"""Hydra imports every module under ``hydra_plugins`` when it starts, so importing this one registers the
structured-config schemas (``train_schema``, ``prepare_schema``; alexnet_lit.config registers them on import)
before any config is composed: through the entry points, ``hydra.compose`` in tests or notebooks, whatever was
imported first."""

import alexnet_lit.config  # noqa: F401
