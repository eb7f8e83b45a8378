"""Paper 000's objective: the total loss and its gradient w.r.t. the pixels (the settings of a run,
the layers the content and style terms read, one forward pass with taps and one backward pass
through the frozen network), and the scale of every term (:meth:`Objective.breakdown`)."""
from dataclasses import dataclass, field

from ..backend import get_array_module
from ..errors import MinvertError
from . import losses

OPTIMIZERS = ("lbfgs", "gd", "normalized", "adam")
DEFAULT_LR = {"gd": None, "normalized": 2.0, "adam": 2.0}  # pixel units, see Settings.lr
GD_FIRST_STEP = 2.0  # gd without --lr: lr fixed so that the first step moves pixels 2 levels on average
INERT_SHARE = 1e-3  # a term with less of the gradient norm than this is reported as inert


@dataclass
class Settings:
    """Everything that defines a run (written to summary.json)."""
    target: int
    multipliers: losses.Multipliers = field(default_factory=losses.Multipliers)
    iters: int = 100
    history: int = 8              # L-BFGS memory (fzliu: maxcor 8)
    init: str = "image"           # "image", "noise" or "mix"
    mix: float = 0.5              # weight of the noise in "mix"
    jitter: int = 0               # max shift in pixels (paper: 16); needs a gradient-step optimizer
    optimizer: str = None         # OPTIMIZERS; None: "lbfgs", or "gd" with jitter (the paper's)
    lr: float = None              # step size in 0..255 pixel units; None: DEFAULT_LR[optimizer]
                                  # (gd: calibrated once on the first gradient, then fixed)
    seed: int = 0
    content_layer: str = None     # None: relu4_2, or the deepest relu of the net's last stage
    style_layers: tuple = None    # None: relu1_1 .. relu5_1 that the net has
    content_kind: str = "gram"    # "gram" (the paper's text) or "raw" (fzliu's code)
    tv_kind: str = "l1"
    color_kind: str = "pixel"     # "pixel" (RGB distance, the presets'), "channel" or "hinge"
    snapshot_every: int = 0
    print_every: int = 1          # print every N-th iteration (log.jsonl keeps all)
    original_colors: bool = False  # keep the photo's colours, take the result's luminance (colors.py)

    def __post_init__(self):
        if self.optimizer is None:
            self.optimizer = "gd" if self.jitter else "lbfgs"
        if self.optimizer not in OPTIMIZERS:
            raise MinvertError(f"unknown optimizer {self.optimizer!r}; use {', '.join(OPTIMIZERS)}")
        if self.jitter and self.optimizer == "lbfgs":
            raise MinvertError("L-BFGS cannot follow an objective that moves every step (jitter); "
                               "use --optimizer gd (the paper's), normalized or adam")
        if self.lr is None and self.optimizer != "lbfgs":
            self.lr = DEFAULT_LR[self.optimizer]
        if self.lr is not None and not self.lr > 0:
            raise MinvertError(f"--lr {self.lr:g}: the step size must be > 0")
        for name, value, kinds in (("content kind", self.content_kind, losses.CONTENT_KINDS),
                                   ("colour kind", self.color_kind, losses.COLOR_KINDS)):
            if value not in kinds:
                raise MinvertError(f"unknown {name} {value!r}; use {', '.join(kinds)}")


def default_layers(net, settings):
    """(content layer, style layers) for this net: the paper's, or the nearest it has."""
    names = net.names
    content = settings.content_layer or losses.CONTENT_LAYER
    if content not in names:
        if settings.content_layer:
            raise MinvertError(f"the network has no layer {content!r} for the content loss")
        relus = [n for n in names if n.startswith("relu") and "_" in n]
        content = relus[-1]
    style = settings.style_layers or tuple(n for n in losses.STYLE_LAYERS if n in names)
    bad = [n for n in style if n not in names]
    if bad:
        raise MinvertError(f"the network has no layer {bad[0]!r} for the style loss")
    return content, tuple(style)


class Objective:
    """The total loss and its gradient w.r.t. the image, for a frozen classifier.

    x: (1, 3, H, W) in the network's input space (net dtype, net device).
    """

    def __init__(self, net, x0, settings, mask=None):
        self.net, self.x0, self.s = net, x0, settings
        self.m = settings.multipliers
        self.content_layer, self.style_layers = default_layers(net, settings)
        self.taps = ([self.content_layer] if self.m.content else []) + \
                    (list(self.style_layers) if self.m.style else [])
        self.threshold = losses.color_threshold(*net.preprocessing.pixel_bounds())
        self.mask = mask  # (1, 1, H, W) or None
        self.shift = (0, 0)
        self.set_targets(x0)

    def set_targets(self, x_ref):
        """Content and style targets from the original image (shifted along with x when jittering):
        P = its features at the content layer (its Gram matrix for content_kind "gram"), A = the
        Gram matrices at the style layers."""
        self.P, self.A = None, {}
        if self.taps:
            _, acts = self.net.forward_taps(x_ref, self.taps, output=False)
            if self.m.content:
                P = acts[self.content_layer]
                self.P = losses.gram(P) if self.s.content_kind == "gram" else P.copy()
            self.A = {n: losses.gram(acts[n]) for n in self.style_layers if self.m.style}

    def _shift_targets(self, shift):
        if self.taps and shift != self.shift:
            xp = get_array_module(self.x0)
            self.set_targets(xp.roll(self.x0, shift, axis=(2, 3)) if any(shift) else self.x0)
        self.shift = shift

    def _pixel_terms(self, x):
        """TV and colour: functions of the image itself, never of a shifted copy (a roll would
        count the wrap seam as an edge)."""
        terms = {}
        if self.m.tv:
            terms["tv"] = losses.tv_loss(x, self.s.tv_kind)
        if self.m.color:
            terms["color"] = losses.color_loss(x, self.x0, self.threshold, self.s.color_kind)
        return terms

    def __call__(self, x, shift=(0, 0), only=None):
        """(total value, terms {name: value}, logits, dx), values as Python floats."""
        total, values, logits, dx = self.evaluate(x, shift=shift, only=only)
        return float(total), {k: float(v) for k, v in values.items()}, logits, dx

    def evaluate(self, x, shift=(0, 0), only=None):
        """(total, terms {name: value}, logits, dx (1, 3, H, W)), the values as 0-d arrays on
        the net's device: nothing waits for the GPU here (the optimiser brings everything
        back to the host in one transfer).

        shift (dy, dx): the network sees x rolled by that many pixels (jitter) and its gradient
        is rolled back; TV and colour see x unshifted. only: a term name; dx is then the
        gradient of that term alone (times its multiplier, masked), the values are all terms'.
        """
        xp = get_array_module(x)
        self._shift_targets(tuple(shift))
        x_net = xp.roll(x, shift, axis=(2, 3)) if any(shift) else x
        logits, acts = self.net.forward_taps(x_net, self.taps, output=True)
        terms = {"class": losses.class_loss(logits, self.s.target)}
        if self.m.content:
            content = losses.content_gram_loss if self.s.content_kind == "gram" else losses.content_loss
            terms["content"] = content(acts[self.content_layer], self.P)
        if self.m.style:
            terms["style"] = losses.style_loss({n: acts[n] for n in self.style_layers}, self.A,
                                               {n: 1.0 / len(self.style_layers) for n in self.style_layers})
        terms.update(self._pixel_terms(x))
        total, grads = losses.total_loss(terms, self.m)
        if only is not None:
            grads = {only: grads[only]}
        tap_grads = {self.content_layer: grads["content"]} if "content" in grads else {}
        for name, g in grads.get("style", {}).items():
            tap_grads[name] = tap_grads[name] + g if name in tap_grads else g
        dx = None
        if "class" in grads or tap_grads:
            dx = self.net.backward(grads.get("class"), tap_grads)
            if any(shift):
                dx = xp.roll(dx, (-shift[0], -shift[1]), axis=(2, 3))  # undo the shift
        for name in ("tv", "color"):
            if name in grads:
                dx = grads[name] if dx is None else dx + grads[name]
        if self.mask is not None:
            dx = dx * self.mask
        return total, {k: v[0] for k, v in terms.items()}, logits, dx

    def breakdown(self, x):
        """The scale of every active term at x (unshifted), for reports and the inert warning.

        Returns {term: {"multiplier", "value" (raw), "weighted" (multiplier x value),
        "share_of_total" (|weighted| / Σ|weighted|), "gradient_norm" (‖multiplier x gradient‖,
        masked), "share_of_gradient" (its norm / Σ norms)}}. One backward pass per network term.
        """
        xp = get_array_module(x)
        rows = {}
        for name in self.m.active():
            _, values, _, dx = self(x, only=name)
            m = self.m.weight(name)
            rows[name] = {"multiplier": m, "value": values[name], "weighted": m * values[name],
                          "gradient_norm": float(xp.sqrt((dx * dx).sum()))}
        total = sum(abs(r["weighted"]) for r in rows.values()) or 1.0
        norms = sum(r["gradient_norm"] for r in rows.values()) or 1.0
        for r in rows.values():
            r["share_of_total"] = abs(r["weighted"]) / total
            r["share_of_gradient"] = r["gradient_norm"] / norms
        return rows


def inert_terms(rows):
    """Names of the non-class terms whose share of the gradient norm is below INERT_SHARE."""
    return [n for n, r in rows.items() if n != "class" and r["share_of_gradient"] < INERT_SHARE]


def format_breakdown(rows):
    """The breakdown as printable lines (a header, then one line per term)."""
    lines = [f"  {'term':<8}{'multiplier':>12}{'raw value':>12}{'x multiplier':>14}"
             f"{'of total':>10}{'of gradient':>13}"]
    for name, r in rows.items():
        lines.append(f"  {name:<8}{r['multiplier']:>12.3g}{r['value']:>12.4g}{r['weighted']:>14.4g}"
                     f"{r['share_of_total']:>10.2%}{r['share_of_gradient']:>13.2%}")
    return lines


def inert_warning(name, row, rows, when):
    """One line: the term, its multiplier, its share, and the multiplier that would give it 1 %."""
    others = sum(r["gradient_norm"] for n, r in rows.items() if n != name)
    hint = ""
    if row["gradient_norm"] > 0 and others > 0:
        needed = abs(row["multiplier"]) * 0.01 / 0.99 * others / row["gradient_norm"]
        hint = f"; about --{name} {needed:.0e} would give it 1 %"
    elif row["value"] == 0:
        hint = " (it is 0 here: nothing for it to pull back)"
    return (f"warning: {name} is inert at {row['multiplier']:g}: {row['share_of_gradient']:.1e} of "
            f"the gradient norm {when}{hint}")


def report_terms(objective, x, log, when, earlier=None):
    """Print each term's scale at x and warn about inert ones; returns the breakdown.

    A term that is 0 at the start (content, style and colour at the original image) is not
    called inert there; at the end (``earlier`` given) it is, if it still has < 1e-3."""
    rows = objective.breakdown(x)
    log(f"terms {when}:")
    for line in format_breakdown(rows):
        log(line)
    for name in inert_terms(rows):
        if rows[name]["value"] == 0 and earlier is None:
            log(f"note: {name} is 0 at the start (nothing to pull back yet); its share is measured "
                f"again at the end")
        elif earlier is None or name not in inert_terms(earlier) or earlier[name]["value"] == 0:
            log(inert_warning(name, rows[name], rows, when))
    return rows
