"""Where the code templates live: inside the package in a wheel, at the top of a checkout. (Each
layer type's template is beside its module in netdsl/layers/; each grammar beside its parser.)"""
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent   # the top package, netdsl/


def resource_dir(name: str) -> Path:
    """The folder `codegen_templates`, installed (netdsl/<name>) or in the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"netdsl is installed without its {name}/ folder")
