"""Stage 4, load: generated source to a live Python module, and a network to its nn.Module.

    module = load_source(render(net))       # the generated file, imported
    model = module.build()                  # its nn.Module

The source is written to a content-addressed file before import, so tracebacks show the
generated lines and Triton's JIT, which reads kernel source with `inspect`, can find them.
The module is imported as Python imports any, into sys.modules under its name (torch.compile
looks functions' modules up there), and so once a process for the same source: a triton module
registers its kernels as PyTorch operators named after the module, and registering them again
would pull them from under the models built before.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType


def cache_dir() -> Path:
    root = os.environ.get("NETDSL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "netdsl")
    path = Path(root) / "generated"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:  # a read-only home: fall back to the temporary folder
        path = Path(tempfile.gettempdir()) / f"netdsl-{os.getuid()}" / "generated"
        path.mkdir(parents=True, exist_ok=True)
        return path


def load_source(source: str, name: str = "net") -> ModuleType:
    """Import generated source as a module named after the network and the source's hash; the
    module imported before for the same source and name."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module_name = f"netdsl_{name}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = cache_dir() / f"{module_name}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
