"""``python -m validate`` runs the ``dmft`` command line."""

import sys

from .cli import main

sys.exit(main())
