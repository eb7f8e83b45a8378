"""The rows of paper 000's results figure as ready-made settings (``minvert transform --preset``).

Each preset names the target class, the four multipliers of the caption in the paper's order
(content, style, TV, colour; the class loss is always x1), the original image it started from,
the mask and whether the row was jittered. ``notes`` says where the caption leaves something open.
"""
from dataclasses import dataclass

from .losses import Multipliers


@dataclass(frozen=True)
class Preset:
    """One row of the paper's results figure (section 3)."""
    target: str                     # ImageNet class name (ILSVRC-2012 class index file)
    target_index: int               # its index in that file
    multipliers: Multipliers
    caption: str                    # the paper's caption, verbatim
    original: str                   # "dog" or "cat": which original image the row starts from
    mask: str | None = None         # None, "body" or "face": hand-drawn gradient mask
    jitter: bool = False            # random shifts of up to 16 px, plain gradient descent
    notes: str = ""                # what the caption leaves open, and how it was read


def _p(target, index, mult, caption, original, mask=None, jitter=False, notes=""):
    return Preset(target, index, Multipliers(*map(float, mult)), caption, original, mask, jitter,
                  notes)


_JIT_NOTE = "original inferred from the target (the text does not say)"
PRESETS = {
    "tabby-plain": _p("tabby", 281, (0, 0, 0, 0), "Tabby cat (0,0,0,0)", "dog"),
    "tabby-color": _p("tabby", 281, (0, 0, 0, 1e-6), "Tabby cat (0,0,0,1e-6)", "dog",
                      notes="section 4 says the second row adds style and TV losses, but this "
                            "caption gives colour only; the figure layout is lost, caption kept"),
    "tabby-content": _p("tabby", 281, (1e-14, 0, 0, 0), "Tabby cat (1e-14,0,0,0)", "dog"),
    "bear-loose": _p("brown_bear", 294, (-1e-11, 0, 1e-6, 0), "Brown bear (-1e-11,0,1e-6)", "dog",
                     notes="the caption gives 3 numbers; the missing colour multiplier is 0"),
    "bear-full": _p("brown_bear", 294, (-6e-11, 1e-13, 1e-7, 1e-6),
                    "Brown bear (-6e-11,1e-13,1e-7,1e-6)", "dog"),
    "dalmatian": _p("dalmatian", 251, (0, 1e-11, 1e-6, 0), "Dalmation (0,1e-11,1e-6,0)", "dog"),
    "hyena-unmasked": _p("hyena", 276, (0, 1e-9, 5e-6, 1e-8),
                         "Hyena [unmasked] (0,1e-9,5e-6,1e-8)", "cat"),
    "hyena-masked": _p("hyena", 276, (0, 1e-10, 1e-7, 1e-6),
                       "Hyena [body-masked] (0,1e-10,1e-7,1e-6)", "cat", mask="body"),
    "tiger-face-plain": _p("tiger", 292, (0, 0, 0, 0), "Tiger [face-masked] (0,0,0,0)", "cat",
                           mask="face"),
    "tiger-face": _p("tiger", 292, (1e-10, 1e-7, 1e-9, 1e-8),
                     "Tiger [face-masked] (1e-10,1e-7,1e-9,1e-8)", "cat", mask="face"),
    "bear-jitter": _p("brown_bear", 294, (0, 1e-11, 0, 0), "Brown bear [jittered] (0,1e-11,0,0)",
                      "dog", jitter=True, notes=_JIT_NOTE),
    "tabby-jitter": _p("tabby", 281, (0, 0, 0, 0), "Tabby cat [jittered] (0,0,0,0)", "dog",
                       jitter=True, notes=_JIT_NOTE),
    "tiger-jitter": _p("tiger", 292, (1e-10, 0, -1e-12, 1e-11),
                       "Tiger [jittered] (1e-10,0,-1e-12,1e-11)", "cat", jitter=True,
                       notes=_JIT_NOTE),
    "tiger-body-jitter": _p("tiger", 292, (1e-10, -1e-12, 0, 1e-11),
                            "Tiger [body-masked, jittered] (1e-10,-1e-12,0,1e-11)", "cat",
                            mask="body", jitter=True, notes=_JIT_NOTE),
}


def preset_help():
    """The presets for ``transform --help``: each with its target and all four multipliers
    labelled (a caption that gives three numbers shows the fourth as 0), mask and jitter."""
    lines = []
    for name, p in PRESETS.items():
        m = p.multipliers
        extra = "".join([f", {p.mask} mask" if p.mask else "", ", jitter 16" if p.jitter else ""])
        lines.append(f"  {name:<18} {p.target}: content {m.content:g}, style {m.style:g}, "
                     f"tv {m.tv:g}, color {m.color:g}{extra}")
    return "\n".join(lines)
