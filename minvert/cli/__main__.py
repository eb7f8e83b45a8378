"""``python -m minvert.cli ...`` runs the ``minvert`` command."""
import sys

from .main import main

sys.exit(main())
