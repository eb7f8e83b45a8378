"""Paper 000's objective: the total loss and its gradient w.r.t. the pixels (the settings of a run,
the layers the content and style terms read, one forward pass with taps and one backward pass
through the frozen network)."""
from dataclasses import dataclass, field

from ..errors import MinvertError
from . import losses


@dataclass
class Settings:
    """Everything that defines a run (written to summary.json)."""
    target: int
    multipliers: losses.Multipliers = field(default_factory=losses.Multipliers)
    iters: int = 100
    history: int = 8              # L-BFGS memory (fzliu: maxcor 8)
    init: str = "image"           # "image", "noise" or "mix"
    mix: float = 0.5              # weight of the noise in "mix"
    jitter: int = 0               # max shift in pixels; > 0 switches to gradient steps
    step: str = "normalized"      # jitter path: "normalized" (deepdream) or "adam"
    lr: float = 2.0               # jitter path: step size in 0..255 pixel units (normalised step / Adam lr)
    seed: int = 0
    content_layer: str = None     # None: relu4_2, or the deepest relu of the net's last stage
    style_layers: tuple = None    # None: relu1_1 .. relu5_1 that the net has
    tv_kind: str = "l1"
    color_kind: str = "masked"
    snapshot_every: int = 0


def default_layers(net, settings):
    """(content layer, style layers) for this net: the paper's, or the nearest it has."""
    names = net.names
    content = settings.content_layer or losses.CONTENT_LAYER
    if content not in names:
        if settings.content_layer:
            raise MinvertError(f"the network has no layer {content!r}")
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
        self.set_targets(x0)

    def set_targets(self, x_ref):
        """Content and style targets from the original image (shifted along with x when jittering)."""
        self.P, self.A = None, {}
        if self.taps:
            _, acts = self.net.forward_taps(x_ref, self.taps, output=False)
            self.P = acts.get(self.content_layer)
            self.A = {n: losses.gram(acts[n]) for n in self.style_layers if self.m.style}
            self.P = None if self.P is None else self.P.copy()

    def __call__(self, x, x_color_ref=None):
        """(total value, terms {name: value}, logits, dx), values as Python floats."""
        total, values, logits, dx = self.evaluate(x, x_color_ref)
        return float(total), {k: float(v) for k, v in values.items()}, logits, dx

    def evaluate(self, x, x_color_ref=None):
        """(total, terms {name: value}, logits, dx) with the values as 0-d arrays on the
        net's device: nothing waits for the GPU here (the optimiser brings everything back
        to the host in one transfer)."""
        logits, acts = self.net.forward_taps(x, self.taps, output=True)
        terms = {"class": losses.class_loss(logits, self.s.target)}
        tap_grads = {}
        if self.m.content:
            terms["content"] = losses.content_loss(acts[self.content_layer], self.P)
        if self.m.style:
            terms["style"] = losses.style_loss({n: acts[n] for n in self.style_layers}, self.A,
                                               {n: 1.0 / len(self.style_layers) for n in self.style_layers})
        if self.m.tv:
            terms["tv"] = losses.tv_loss(x, self.s.tv_kind)
        if self.m.color:
            ref = self.x0 if x_color_ref is None else x_color_ref
            terms["color"] = losses.color_loss(x, ref, self.threshold, self.s.color_kind)
        total, grads = losses.total_loss(terms, self.m)
        if "content" in grads:
            tap_grads[self.content_layer] = grads["content"]
        for name, g in grads.get("style", {}).items():
            tap_grads[name] = tap_grads[name] + g if name in tap_grads else g
        dx = self.net.backward(grads["class"], tap_grads)
        for name in ("tv", "color"):
            if name in grads:
                dx = dx + grads[name]
        if self.mask is not None:
            dx = dx * self.mask
        return total, {k: v[0] for k, v in terms.items()}, logits, dx
