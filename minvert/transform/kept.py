"""Which image a transform run keeps, and why its probability differs from the last line printed."""


def kept_note(s, summary, label):
    """One line for the output and summary.json["kept"].

    The run keeps its LAST iterate (the last good one if it stopped early), not the most probable
    image it passed through: the objective weighs content, style, TV and colour too, so a later
    iterate can be better overall with a lower p. The saved image is that iterate rounded to
    0..255 pixels (and recoloured with --original-colors), which moves p a little; gradient
    steps print p before each step, so their last line is one step behind the kept image.
    """
    n = summary["iterations"]
    where = "the last good iterate" if summary["stopped_early"] else "the last iterate"
    behind = ("; each iteration line shows p before its step, so the last line is one step behind"
              if s.optimizer != "lbfgs" else "")
    recolour = " and given the photo's colours" if s.original_colors else ""
    return (f"kept: {where} (iteration {n}), not the most probable one seen (the objective weighs "
            f"the other terms too): p({label}) = {summary['probability_last_iterate']:.4f} there, "
            f"{summary['probability_after']:.4f} as saved (pixels rounded to 0..255{recolour})"
            f"{behind}")
