"""``python -m minvert ...`` runs the ``minvert`` command (handy when the script is not on PATH)."""
import sys

from .cli import main

sys.exit(main())
