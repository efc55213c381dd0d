"""`python -m netdsl ...`, as torchrun runs it: the same as the `netdsl` command."""
import sys

from .cli import main

sys.exit(main())
