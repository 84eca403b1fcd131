"""``python -m validate`` runs the ``dmft`` command line."""

import sys

from .cli import main

if __name__ == "__main__":  # spawned worker processes re-import this module: they must not rerun the CLI
    sys.exit(main())
