"""The comparative words of the demo page, each computed from the two numbers it sits beside,
so that no sentence can say "better" of a number that is worse (issue 23, item 9)."""


def compare(a, b, higher, lower, same):
    """``higher`` if a > b, ``lower`` if a < b, else ``same`` (numbers as shown, rounded by the caller)."""
    return higher if a > b else lower if a < b else same


def change(before, after, rose="rose", fell="fell", stayed="stayed"):
    """How a number moved from ``before`` to ``after``."""
    return compare(after, before, rose, fell, stayed)


def against_chance(rate, chance):
    """'above chance', 'below chance' or 'at chance' for a proportion and its chance level."""
    return compare(round(rate, 2), round(chance, 2), "above chance", "below chance", "at chance")


def seen_versus_unseen(train, held_out):
    """The sentence comparing training with held-out images, every word from the numbers shown."""
    psnr = (round(train["psnr"], 2), round(held_out["psnr"], 2))
    reid = (round(train["reidentification"]["top1"], 2), round(held_out["reidentification"]["top1"], 2))
    text = (f"Training images come back with {compare(*psnr, 'higher', 'lower', 'the same')} PSNR than "
            f"held-out ones ({psnr[0]:.2f} vs {psnr[1]:.2f} dB) and are re-identified "
            f"{compare(*reid, 'more often', 'less often', 'as often')} ({reid[0]:.0%} vs {reid[1]:.0%})")
    if psnr[0] > psnr[1] and reid[0] > reid[1]:
        return text + ": some of that is memorised, not read from the vector."
    if psnr[0] > psnr[1]:
        return text + (": the pixel gap is memorised detail, not read from the vector; re-identification "
                       "does not favour them (compare the intervals in the table).")
    return text + ": here the decoder did not favour the images it was trained on."
