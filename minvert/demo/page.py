"""The HTML page of ``minvert demo``: every section says what was done, what to look at in its
figure and what its numbers mean, so that it reads without the docs (numbers: report.json)."""
import html

from .invert import section as _invert_section
from .words import against_chance, change, compare, seen_versus_unseen

esc = html.escape

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}
td,th{padding:3px 10px;text-align:left} th{background:#eee} img{image-rendering:pixelated}
.grid{display:flex;flex-wrap:wrap;gap:10px} .cell{width:150px;font-size:13px}
.cell img{width:128px;height:128px;display:block} .ok{color:#176117} .bad{color:#b00020}
.note{background:#f5f5f0;border-left:4px solid #bbb;padding:.5em 1em}"""


def _pretty(name):
    return name.replace("-on-", " on ").replace("-", " ")


def _cells(rows):
    """A grid of images with HTML captions: rows = [(src, [(text, ok or None), ...])]."""
    out = []
    for src, lines in rows:
        caption = "<br>".join(f"<span class='{'' if ok is None else ('ok' if ok else 'bad')}'>{esc(t)}</span>"
                              for t, ok in lines)
        out.append(f"<div class='cell'><img src='{esc(src)}' alt=''>{caption}</div>")
    return "<div class='grid'>" + "".join(out) + "</div>"


def _classification(c):
    textures = [m for m in c if m.endswith("textures")]
    first = c[textures[0]]["predictions"]
    rows = [(f"images/{p['image']}", [(f"truth: {p['truth']}", None)] +
             [(f"{m.split('-')[1]}: {c[m]['predictions'][i]['label']} ({c[m]['predictions'][i]['probability']:.2f})",
               c[m]['predictions'][i]['label'] == p['truth']) for m in textures])
            for i, p in enumerate(first)]
    shapes = [m for m in c if m not in textures][0]
    shape_rows = [(f"images/{p['image']}", [(f"truth: {_pretty(p['truth'])}", None),
                                            (f"seen: {_pretty(p['label'])} ({p['probability']:.2f})",
                                             p["label"] == p["truth"])])
                  for p in c[shapes]["predictions"]]
    score = lambda m: f"{c[m]['correct']}/{c[m]['total']}"  # noqa: E731
    return f"""<h2>1. The bundled classifiers</h2>
<p><b>What was done.</b> minvert generated new images with a seed that no training run used and
classified them with the three small networks it ships (trained by minvert itself, see
weights/README.md). Two know 8 texture <i>patterns</i> (colours are random, so they ignore colour);
{esc(shapes)} knows 32 classes <i>colour family &times; shape &times; dark or light background</i>, the
stand-in for ImageNet in section 3. <b>What to look at:</b> under each image its true class, then what
each network says and its softmax probability (green = right, red = wrong).
<b>Numbers:</b> tiny-vgg-textures {score(textures[0])}, tiny-resnet-textures {score(textures[1])},
{esc(shapes)} {score(shapes)} correct.</p>
{_cells(rows)}
<p></p>
{_cells(shape_rows)}"""


def _transform(t):
    return f"""<h2>2. Paper 000: change an image until the classifier sees another class</h2>
<p><b>What was done.</b> Starting from a "dots" texture, L-BFGS-B changed its pixels to raise
tiny-vgg-textures' probability of "stripes" (class loss), with a total-variation term (weight 1e-3)
that keeps the change smooth: {t['iterations']} iterations in {t['seconds']:.1f} s.
<b>What to look at:</b> left the original, middle the result, right the difference |result &minus; original|
amplified until its brightest pixels are white (black = unchanged).</p>
<img src="transform/panel.png" alt="original, result, amplified difference">
<p><b>Numbers.</b> p(stripes) {change(round(t['probability_before'], 3), round(t['probability_after'], 3))}
from {t['probability_before']:.3f} to {t['probability_after']:.3f}; the mean
pixel changed by {t['mean_abs_pixel_change']:.1f} of 255; the result's total variation is
{t['tv_ratio']:.2f}&times; the original's: the result is
{compare(1, round(t['tv_ratio'], 2), 'smoother', 'rougher', 'as smooth')}.</p>
<p class="note"><b>Why the result still shows dots.</b> The optimiser changes only what the classifier's
decision depends on, and stops as soon as the classifier is sure. A tiny network trained on 8
synthetic patterns takes its evidence from a few local statistics of edges; a change of a few
levels out of 255, spread over the whole image as fine grain (the amplified difference), tips that
evidence from "dots" to "stripes" long before anything looks like stripes to us. A classifier's
evidence for a class is not a picture of it. Paper 000 gets convincing tigers because VGG-19 learnt
from over a million photos and because its extra loss terms (content, style, colour) steer the
change.</p>"""


def _metrics_table(ev):
    def row(split, label):
        s = ev[split]
        gain = s["psnr"] - s["mean_image"]["psnr"]
        g, r1 = s["ci95"]["psnr_gain"], s["ci95"]["reidentification_top1"]
        return (f"<tr><td>{label}</td><td>{s['count']}</td><td>{s['psnr']:.2f}</td><td>{s['mean_image']['psnr']:.2f}</td>"
                f"<td>{gain:+.2f} [{g[0]:+.2f}, {g[1]:+.2f}]</td><td>{s['ssim']:.3f}</td>"
                f"<td>{s['mean_image']['ssim']:.3f}</td><td>{s['reidentification']['top1']:.1%} "
                f"[{r1[0]:.1%}, {r1[1]:.1%}]</td><td>{s['reidentification']['top5']:.1%}</td>"
                f"<td>{s['reidentification_chance']['top1']:.2%} / {s['reidentification_chance']['top5']:.2%}</td></tr>")
    return ("<table><tr><th>images</th><th>n</th><th>PSNR dB</th><th>baseline PSNR</th>"
            "<th>gain dB [95% CI]</th><th>SSIM</th><th>baseline SSIM</th><th>re-id top-1 [95% CI]</th>"
            "<th>re-id top-5</th><th>chance top-1 / top-5</th></tr>"
            f"{row('train', 'training (seen)')}{row('held_out', 'held-out (unseen)')}</table>")


def _what_comes_back(r):
    """The note under the numbers of section 3; every comparison computed from its numbers."""
    ev, k, encoder, n = r["evaluation"], r["concepts"], r["encoder"], r["n_images"]
    ho = ev["held_out"]
    found = {p: against_chance(k[p], k["chance"][p]) for p in ("colour", "background", "shape")}
    lead = ("the decoder recovers its main concepts, as the paper found"
            if all(v == "above chance" for v in found.values()) else
            "the paper found that its main concepts come back; here")
    gain = round(ho["psnr"] - ho["mean_image"]["psnr"], 1)
    top1, chance = ho["reidentification"]["top1"], ho["reidentification_chance"]["top1"]
    place = k["position_error_px"]
    near = round(place["reconstruction"], 1) < round(place["image_centre"], 1)
    low = ev["held_out"]["ci95"]["reidentification_top1"][0]
    verdict = ("So a feature vector is not anonymous: it tells what kind of scene an image shows, but "
               "not the picture." if low > chance else
               "Here re-identification is not clearly above chance (its interval reaches chance); "
               "what the vector gives away is the concepts above, not the picture.")
    return f"""<p class="note"><b>What comes back, and what does not.</b> From the vector of an image it
never saw, {lead}: {esc(encoder)} recognises the object's colour family in {k['colour']:.0%} of the
{k['count']} held-out reconstructions (chance {k['chance']['colour']:.0%}, {found['colour']}), the dark or
light background in {k['background']:.0%} (chance {k['chance']['background']:.0%}, {found['background']}) and
the shape in {k['shape']:.0%} (chance {k['chance']['shape']:.0%}, {found['shape']}); the pixels are {abs(gain):.1f} dB {compare(gain, 0, 'closer to', 'further from', 'as close to')}
the originals than the mean image is, and {top1:.0%} of unseen images are picked out of {n} by their
reconstruction ({top1 / chance:.0f}&times; chance). The centre of the reconstructed blob is
{place['reconstruction']:.1f} pixels (of 64) from the object's, where guessing the middle of the image is
off by {place['image_centre']:.1f}: {"the object's rough place comes back too" if near else
"the object's place does not come back"}. What does not come back: the exact position and size of the
object, its crisp outline, the background's own colours, the direction of its horizon and its texture
&mdash; reconstructions are soft blobs. {seen_versus_unseen(ev['train'], ho)} {verdict}</p>"""


def _optimizer_note(r):
    """Why the demo's decoder is not trained with the paper's optimiser."""
    if r.get("optimizer", "adam") == "adadelta":
        return "It was trained with Adadelta (lr 1, rho 0.95, eps 1e-8), the paper's optimiser."
    return ("It was trained with <b>Adam</b> (lr 1e-3), <i>not</i> the paper's Adadelta: Adadelta's "
            "first steps are only sqrt(eps / (1 &minus; rho)) = 4.5e-4 per weight (eps 1e-8, rho 0.95), "
            "so it fits more slowly, and in the demo's few seconds of training its reconstructions "
            "pick out far fewer unseen images (docs/reproducing.md has the measured comparison on "
            "this dataset); "
            "<code>minvert reconstruct train</code> uses Adadelta by default, as the paper did.")


def _reconstruct(r):
    ev, k, encoder = r["evaluation"], r["concepts"], r["encoder"]
    tr, ho = ev["train"], ev["held_out"]
    n = r["n_images"]
    return f"""<h2>3. Paper 003: how much of an image its feature vector gives away</h2>
<p><b>What was done.</b> {n} new images of coloured shapes ({n // 32} of each of the 32 classes) went through
{esc(encoder)}, which turns each into its 128-number <i>pooled feature vector</i> (what ResNet-50's
2048-d vector is in the paper). A decoder (the paper's design, scaled down: the vector reshaped to a 2&times;2&times;32
map, then four stages of 3&times;3 convolutions and 2&times; upsampling to 32&times;32) was trained for {len(r['history'])} epochs to turn
vectors back into images, on {tr['count']} of them; the other {ho['count']}, picked at random, were
never shown to it. That is the paper's privacy question: given only the vector of an <i>unseen</i>
image, what can one see of it? {_optimizer_note(r)}</p>
<p><b>What to look at.</b> Pairs of images: left a reconstruction made from the vector alone, right the
unseen original it came from, with its class. Under each reconstruction, the class {esc(encoder)}
recognises in it ("seen"). Compare them with the mean of the training images (right), the
<i>baseline</i>: the best a decoder could do if it ignored its input.</p>
<div style="display:flex;gap:16px;align-items:flex-start">
<img src="{esc(r['figure']['pairs'])}" alt="held-out reconstructions beside their originals">
<div class="cell"><img src="{esc(r['figure']['mean_image'])}" alt="mean training image">mean training image
(the baseline)</div></div>
<p><b>Numbers</b> (pixels compared at the decoder's 32&times;32):</p>
{_metrics_table(ev)}
<ul>
<li><b>PSNR</b> (dB): pixel closeness, higher is better; +1 dB is 21 % less squared error.
<b>SSIM</b> (&minus;1..1): agreement of local brightness, contrast and structure.</li>
<li><b>Baseline</b>: the mean training image scored the same way. Beating it means the decoder read
something about <i>this</i> image from its vector. The gain's 95 % interval comes from resampling
the images (bootstrap): if it excludes 0, the gain is not luck of the draw.</li>
<li><b>Re-identification</b>: each reconstruction is encoded again and its vector compared (cosine) with
the vectors of all {n} originals; top-1 = its own original is the closest, top-5 = among the five
closest. <b>Chance</b> = picking at random: 1/{n} = {1 / n:.2%} for top-1. The interval is Wilson's
for a proportion of {ho['count']} images.</li>
</ul>
{_what_comes_back(r)}"""


def _curves_text(r):
    """Section 5's words: how each curve moved, from its first and last values."""
    h, losses = r["reconstruct"]["history"], r["transform"]["loss_per_iteration"]
    first, last = h[0], h[-1]
    gap = round(last["psnr"] - last["val_psnr"], 2)
    gap_text = (f"the training images end {abs(gap):.2f} dB "
                f"{compare(gap, 0, 'above', 'below', 'level with')} the held-out ones"
                + (", memorisation of the training images" if gap > 0 else ""))
    return f"""<p><b>Left:</b> PSNR of the decoder's reconstructions after each epoch, on the training
images (blue, averaged over the epoch's batches) and on the held-out ones (red). Training PSNR
{change(round(first['psnr'], 2), round(last['psnr'], 2))} from {first['psnr']:.2f} to {last['psnr']:.2f} dB,
held-out PSNR {change(round(first['val_psnr'], 2), round(last['val_psnr'], 2))} from
{first['val_psnr']:.2f} to {last['val_psnr']:.2f} dB; {gap_text}. <b>Right:</b> paper 000's loss (class
+ total variation) per L-BFGS-B iteration: it {change(round(losses[0], 4), round(losses[-1], 4))} from
{losses[0]:.4g} to {losses[-1]:.4g} while p(stripes) went from {r['transform']['probability_before']:.3f}
to {r['transform']['probability_after']:.3f}.</p>"""


def page(r, texture_classes):
    """The demo's index.html from its report dict (see :func:`minvert.demo.run.run_demo`)."""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>minvert demo</title>
<style>{STYLE}</style></head><body>
<h1>minvert demo</h1>
<p>minvert re-implements two papers with hand-written network layers (NumPy, every gradient
checked): <b>paper 000</b> changes an image until a classifier sees another class; <b>paper 003</b>
rebuilds an image from the feature vector a classifier computes for it. This page ran both on the
small networks minvert ships, offline, in {r['seconds']:.0f} s. The full-size experiments
(VGG-19, ResNet-50 on real photos) are described in docs/reproducing.md.</p>
{_classification(r['classify'])}
{_transform(r['transform'])}
{_reconstruct(r['reconstruct'])}
{_invert_section(r['invert'], r['reconstruct']['encoder'])}
<h2>5. Training curves</h2>
{_curves_text(r)}
<img src="curves.png" alt="decoder PSNR per epoch; transform loss per iteration">
<p>Every number: <a href="report.json">report.json</a>, <a href="transform/summary.json">transform/summary.json</a>,
<a href="reconstruct/run/evaluation.json">reconstruct/run/evaluation.json</a> (also random-vector decodes:
<a href="reconstruct/run/contact_sheet.png">contact sheet</a>).</p>
</body></html>
"""
