"""Every layer type, registered by importing each module of netdsl/layers/ once.

    from netdsl.layers.registry import REGISTRY
    REGISTRY["conv"].output(options, in_shape, groups, split)

A new layer type is a new module beside the others (and its template): nothing here changes.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from .base import REGISTRY, LayerType

for _module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    importlib.import_module(f"{__package__}.{_module.name}")

__all__ = ["REGISTRY", "LayerType"]
