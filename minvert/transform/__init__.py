"""Paper 000 (Anosheh, Kapadia, Rulison): alter an image until VGG-19 calls it a target class.

The pixels are optimised, the network stays frozen: L-BFGS-B minimises

    class + content*C + style*S + TV*T + colour*K

where the class term is the target's cross-entropy and the others keep the image natural
(its content, its Gram-matrix style, smoothness, its colours). Gradient masks keep parts of
the image exactly; with jitter (random shifts) plain gradient steps replace L-BFGS.

Read in this order: ``losses.py`` (each term and its gradient), ``objective.py`` (one forward
pass with taps and one backward pass to the pixels give the total and its gradient),
``optimize.py`` (L-BFGS-B with box bounds, the jitter loop, the outputs), ``presets.py`` (the
rows of the paper's results figure), ``cli.py`` (``minvert transform``).
"""
from .losses import Multipliers  # noqa: F401
from .objective import Objective, Settings  # noqa: F401
from .optimize import probabilities, transform  # noqa: F401
from .presets import PRESETS  # noqa: F401
