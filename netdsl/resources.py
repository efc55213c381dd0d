"""Where the grammar and the code templates live: beside the package in a wheel, at the top of a checkout."""
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder `grammars` or `codegen_templates`, installed or in the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"netdsl is installed without its {name}/ folder")
