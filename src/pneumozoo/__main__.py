"""``python -m pneumozoo`` runs the command line."""

import sys

from pneumozoo.cli import main

sys.exit(main())
