"""The demo's step 4: the decoder beside inversion by optimisation, on the same held-out
vectors, and its section of the page. Kept apart from demo.py and demo_page.py, which call it."""
import html
import time

from ..images import save_image
from ..reconstruct.compare import METHODS, compare, figure
from ..reconstruct.invert import InvertSettings
from ..reconstruct.runs import read_run

esc = html.escape
N_IMAGES = 40        # held-out vectors inverted (of 160): the optimisation runs them as one batch
ITERS, REFINE_ITERS = 30, 15


def run_step(out, log, device=None, iters=ITERS):
    """Compare the four methods on the first N_IMAGES held-out images of the demo's run; writes
    reconstruct/comparison.png. iters: of optimisation alone (refinement: half, as REFINE_ITERS
    is of ITERS). Returns the report entry (no per-image arrays)."""
    folder = out / "reconstruct"
    rows = read_run(folder / "run")["split"]["test"][:N_IMAGES]
    iters, refine_iters = iters, max(1, iters * REFINE_ITERS // ITERS)
    settings, refine = InvertSettings(iters=iters), InvertSettings(iters=refine_iters)
    log(f"[3/3, continued] the decoder beside pixel optimisation (Mahendran & Vedaldi) on {len(rows)} held-out "
        f"vectors: L-BFGS-B, {iters} iterations from the mean image, {refine_iters} from the decoder's output")
    start = time.perf_counter()
    result = compare(folder / "run", folder / "features.h5", rows=rows, settings=settings, refine=refine,
                     log=lambda *_: None, device=device)
    save_image(folder / "comparison.png", figure(result, count=5))
    methods = {name: {k: v for k, v in m.items() if k != "feature_distance_each"}
               for name, m in result["methods"].items()}
    for name, m in methods.items():
        log(f"      {name:<21} PSNR {m['psnr']:5.2f} dB  SSIM {m['ssim']:.3f}  re-id top-1 "
            f"{m['reid_top1']:4.0%}  feature distance {m['feature_distance']:.3f}  "
            f"{m['seconds_per_image'] * 1000:6.1f} ms/image")
    return {"methods": methods, "count": len(rows), "iters": iters, "refine_iters": refine_iters,
            "settings": result["settings"], "figure": "reconstruct/comparison.png",
            "seconds": round(time.perf_counter() - start, 1)}


def _row(name, m):
    ci = lambda v, c, f: f"{v:{f}} [{c[0]:{f}}, {c[1]:{f}}]"  # noqa: E731
    return (f"<tr><td>{esc(name)}</td><td>{ci(m['psnr'], m['psnr_ci95'], '.2f')}</td>"
            f"<td>{ci(m['ssim'], m['ssim_ci95'], '.3f')}</td>"
            f"<td>{ci(m['reid_top1'], m['reid_top1_ci95'], '.0%')}</td>"
            f"<td>{ci(m['feature_distance'], m['feature_distance_ci95'], '.3f')}</td>"
            f"<td>{m['seconds_per_image'] * 1000:.1f}</td></tr>")


def section(r, encoder):
    """The page's section 4 from the report entry of :func:`run_step`."""
    m = r["methods"]
    dec, opt, ref, mean = (m[k] for k in ("decoder", "optimisation", "decoder + refinement", "mean image"))
    closer = "closer to" if ref["feature_distance"] < dec["feature_distance"] else "no closer to"
    pixels = ("about as close in pixels as the decoder's" if abs(ref["psnr"] - dec["psnr"]) < 0.5 else
              ("closer" if ref["psnr"] > dec["psnr"] else "further") + " in pixels than the decoder's")
    table = "".join(_row(name, m[name]) for name in METHODS)
    lesson = ("The decoder, which learned what images usually look like, is what brings the pixels back; "
              "the optimisation is what makes its output agree with the vector."
              if dec["psnr"] > opt["psnr"] + 1 else
              "Here optimisation alone comes as close in pixels as the decoder: the decoder learned little.")
    gap = opt["psnr"] - mean["psnr"]
    opt_pixels = ("stay at the mean image's level" if abs(gap) < 1 else
                  f"move {abs(gap):.1f} dB {'closer than' if gap > 0 else 'further than'} the mean image")
    return f"""<h2>4. Beside the decoder: inverting the vector by optimising the pixels</h2>
<p><b>What was done.</b> The other classic way back from a feature vector (Mahendran &amp; Vedaldi 2015)
trains nothing: it changes the pixels of an image until {esc(encoder)} gives it the wanted vector,
minimising the vector's squared distance (divided by its own squared length) plus two priors that keep
the image plausible: an &alpha;-norm (&alpha; = {r['settings']['alpha']:g}) against extreme values and a total-variation
term against noise. The same {r['count']} held-out vectors went four ways: the <i>mean image</i> (the
baseline), the <i>decoder</i> of section 3, <i>optimisation</i> alone ({r['iters']} L-BFGS-B iterations from the
mean image) and <i>decoder + refinement</i> (the optimisation started from the decoder's output,
{r['refine_iters']} iterations).</p>
<p><b>What to look at.</b> Each row: the unseen original, then the four results (PSNR against the original
underneath).</p>
<img src="{esc(r['figure'])}" alt="original, mean image, decoder, optimisation, decoder + refinement">
<p><b>Numbers</b> (95 % intervals over the {r['count']} images; pixels at the decoder's 32&times;32; the
<i>feature distance</i> is &Vert;&Phi;(result) &minus; &Phi;<sub>0</sub>&Vert; / &Vert;&Phi;<sub>0</sub>&Vert; after
rounding the result to 0..255; re-identification ranks each result's vector against all originals' as
in section 3; time per image on this machine, the optimisation running the set as one batch):</p>
<table><tr><th>method</th><th>PSNR dB</th><th>SSIM</th><th>re-id top-1</th><th>feature distance</th>
<th>ms / image</th></tr>{table}</table>
<p class="note"><b>What it shows.</b> Refinement ends {closer} the target vectors than the decoder it started
from ({ref['feature_distance']:.3f} against {dec['feature_distance']:.3f}) and {pixels}
({ref['psnr']:.2f} against {dec['psnr']:.2f} dB). Optimisation alone matches the vector
(distance {opt['feature_distance']:.3f}, the mean image's {mean['feature_distance']:.3f}) while its pixels
{opt_pixels} ({opt['psnr']:.2f} against {mean['psnr']:.2f} dB): many images share a vector,
and the one the optimiser finds near its start is not the original. Its re-identification
({opt['reid_top1']:.0%}) is therefore no evidence that it shows the original: it was optimised against the
very encoder that ranks it. {lesson}</p>"""
