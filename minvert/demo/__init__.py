"""``minvert demo``: both papers on the bundled models, offline (:mod:`.run`), written up as one
HTML page (:mod:`.page`)."""
from .run import run_demo  # noqa: F401  (public: minvert.demo.run_demo)
