"""``minvert demo``: both papers on the bundled models, offline, in a couple of minutes.

1. classify generated textures with tiny-vgg-textures and tiny-resnet-textures;
2. paper 000: transform a "dots" texture until tiny-vgg-textures calls it "stripes";
3. paper 003: extract tiny-resnet-textures features of generated textures, train a small
   decoder with the hand-coded Adadelta, reconstruct seen and unseen images;
4. write DIR/index.html with every image and its numbers, and loss curves drawn by minvert.
"""
import html
import json
import time
from pathlib import Path

import numpy as np

from .errors import MinvertError

N_CLASSIFY = 2        # generated images per class to classify
N_RECON = 110         # images for the decoder: the first 10 held out (the paper's split)
DECODER_EPOCHS = 120
OPTIMIZER = "adam"    # converges in the demo's seconds; the paper's Adadelta: `minvert reconstruct train`
TRANSFORM_ITERS = 30


def run_demo(out, force=False, log=print, decoder_epochs=DECODER_EPOCHS, transform_iters=TRANSFORM_ITERS,
             device=None):
    from .datasets import CLASSES, make_dataset
    from .images import save_image
    out = Path(out)
    if (out / "index.html").exists() and not force:
        raise MinvertError(f"{out} already holds a demo; choose another --out or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log(f"minvert demo -> {out}/index.html")

    images, labels, _ = make_dataset(N_CLASSIFY, size=64, seed=2024)
    paths = []
    for i, (img, y) in enumerate(zip(images, labels)):
        paths.append(out / "images" / f"{CLASSES[y]}_{i % N_CLASSIFY}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        save_image(paths[-1], img)
    report = {"classify": _classify(paths, labels, log, device)}
    report["transform"] = _transform(out, images, labels, transform_iters, log, device)
    report["reconstruct"] = _reconstruct(out, decoder_epochs, log, device)
    _loss_curves(out, report)
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "index.html").write_text(_page(report))
    log(f"done in {report['seconds']:.0f}s. Open {out / 'index.html'} in a browser "
        f"(panels: {out / 'transform' / 'panel.png'}, {out / 'reconstruct' / 'contact_sheet.png'})")
    return report


def _classify(paths, labels, log, device=None):
    from .classify import classify_files
    from .datasets import CLASSES
    rows = {}
    for model in ("tiny-vgg-textures", "tiny-resnet-textures"):
        results = classify_files([str(p) for p in paths], model, top=1, device=device)
        correct = sum(r["top"][0]["label"] == CLASSES[y] for r, y in zip(results, labels))
        log(f"[1/3] {model}: {correct}/{len(paths)} generated textures classified correctly")
        rows[model] = {"correct": correct, "total": len(paths),
                       "predictions": [{"image": Path(r["image"]).name, "truth": CLASSES[y],
                                        "label": r["top"][0]["label"],
                                        "probability": round(r["top"][0]["probability"], 4)}
                                       for r, y in zip(results, labels)]}
    return rows


def _transform(out, images, labels, iters, log, device=None):
    from .datasets import CLASSES
    from .transform import Multipliers, Settings, transform
    from .weights import load_model
    net = load_model("tiny-vgg-textures", device=device)
    img = images[list(labels).index(CLASSES.index("dots"))]
    settings = Settings(target=CLASSES.index("stripes"), iters=iters, multipliers=Multipliers(tv=1e-3))
    log(f"[2/3] paper 000: dots -> stripes with L-BFGS-B, {iters} iterations, TV 1e-3")
    summary = transform(net, img, settings, out_dir=out / "transform", force=True, log=lambda *_: None)
    log(f"      p(stripes) {summary['probability_before']:.3f} -> {summary['probability_after']:.3f}, "
        f"mean |change| {summary['mean_abs_pixel_change']:.1f}/255, TV ratio {summary['tv_ratio']:.2f}")
    summary.pop("result")
    losses = [json.loads(line)["total"] for line in (out / "transform" / "log.jsonl").read_text().splitlines()]
    return {**{k: summary[k] for k in ("probability_before", "probability_after", "mean_abs_pixel_change",
                                        "tv_ratio", "iterations", "seconds", "top5_after")},
            "loss_per_iteration": losses}


def _reconstruct(out, epochs, log, device=None):
    from .datasets import CLASSES, make_dataset
    from .images import save_image
    from .reconstruct import evaluate, extract, train
    folder = out / "reconstruct"
    images, labels, _ = make_dataset((N_RECON + len(CLASSES) - 1) // len(CLASSES), size=64, seed=7)
    order = np.random.default_rng(0).permutation(len(images))[:N_RECON]  # classes mixed
    paths = []
    for k, i in enumerate(order):
        paths.append(folder / "images" / f"{k:03d}_{CLASSES[labels[i]]}.png")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        save_image(paths[-1], images[i])
    cache = folder / "features.h5"
    cache.unlink(missing_ok=True)
    run = folder / "run"
    for stale in ("checkpoint.h5", "log.jsonl"):
        (run / stale).unlink(missing_ok=True)
    log(f"[3/3] paper 003: tiny-resnet-textures features of {N_RECON} textures, decoder trained "
        f"{epochs} epochs with {OPTIMIZER} (first 10 images held out)")
    extract([str(p) for p in paths], "tiny-resnet-textures", cache, target_size=64, log=lambda *_: None,
            device=device)
    history = train(cache, run, decoder={"widths": [64, 48, 32, 16]}, epochs=epochs, batch_size=20,
                    split="paper", optimizer=OPTIMIZER, log=lambda *_: None, device=device)
    ev = evaluate(run, cache, log=lambda *_: None, device=device)
    for name in ("contact_sheet.png",):
        if (run / name).exists():
            (run / name).replace(folder / name)
    tr, ho = ev["train"], ev["held_out"]
    log(f"      train PSNR {tr['psnr']:.2f} dB (mean-image baseline {tr['mean_image']['psnr']:.2f}), "
        f"held-out {ho['psnr']:.2f} dB; re-identified top-1 train {tr['reidentification']['top1']:.0%}, "
        f"held-out {ho['reidentification']['top1']:.0%}")
    return {"evaluation": ev, "loss_per_epoch": [h["loss"] for h in history]}


def _loss_curves(out, report):
    from .images import save_image
    from .plots import line_plot
    a = line_plot({"decoder BCE": report["reconstruct"]["loss_per_epoch"]},
                  title="paper 003: decoder training", xlabel="epoch", ylabel="loss")
    b = line_plot({"total loss": report["transform"]["loss_per_iteration"]},
                  title="paper 000: dots -> stripes", xlabel="L-BFGS iteration", ylabel="loss")
    save_image(out / "loss_curves.png", np.concatenate([a, b], axis=1))


def _page(r):
    esc = html.escape
    cls_rows = "".join(
        f"<tr><td><img src='images/{esc(p['image'])}' width=64></td><td>{esc(p['truth'])}</td>"
        + "".join(f"<td>{esc(r['classify'][m]['predictions'][i]['label'])} "
                  f"({r['classify'][m]['predictions'][i]['probability']:.2f})</td>" for m in r["classify"])
        + "</tr>" for i, p in enumerate(next(iter(r["classify"].values()))["predictions"]))
    t, ev = r["transform"], r["reconstruct"]["evaluation"]

    def metric_rows(split):
        s = ev[split]
        return (f"<tr><td>{split.replace('_', '-')}</td><td>{s['count']}</td><td>{s['psnr']:.2f}</td>"
                f"<td>{s['ssim']:.3f}</td><td>{s['mean_image']['psnr']:.2f}</td><td>{s['mean_image']['ssim']:.3f}</td>"
                f"<td>{s['reidentification']['top1']:.0%}</td><td>{s['reidentification']['top5']:.0%}</td></tr>")
    head = "".join(f"<th>{esc(m)}</th>" for m in r["classify"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>minvert demo</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;line-height:1.4}}
td,th{{padding:2px 8px;text-align:left}} img{{image-rendering:pixelated}}</style></head><body>
<h1>minvert demo</h1>
<p>Everything below was computed by minvert's hand-written layers on the bundled models, offline,
in {r['seconds']:.0f} s.</p>
<h2>1. Classification</h2>
<p>Generated textures the models never saw. Correct: {', '.join(f"{esc(m)} {v['correct']}/{v['total']}" for m, v in r['classify'].items())}.</p>
<table><tr><th>image</th><th>truth</th>{head}</tr>{cls_rows}</table>
<h2>2. Paper 000: image transformation by class inversion</h2>
<p>A "dots" texture altered by L-BFGS-B on its pixels until tiny-vgg-textures calls it "stripes"
(class loss + total variation x 1e-3), {t['iterations']} iterations in {t['seconds']:.1f} s:
p(stripes) {t['probability_before']:.3f} &rarr; {t['probability_after']:.3f}; mean absolute pixel change
{t['mean_abs_pixel_change']:.1f}/255; total variation result/original {t['tv_ratio']:.2f}.</p>
<img src="transform/panel.png">
<h2>3. Paper 003: reconstruction from a feature vector</h2>
<p>tiny-resnet-textures' pooled features of {N_RECON} generated textures; a
scaled-down version of the paper's decoder trained with {OPTIMIZER.capitalize()} on {ev['train']['count']} of them; the first
10 are held out, as in the paper's code. Baseline: the mean training image. Re-identification: how often a
reconstruction's own feature is nearest (cosine) to its source's among all {N_RECON}.</p>
<table><tr><th>images</th><th>n</th><th>PSNR dB</th><th>SSIM</th><th>baseline PSNR</th><th>baseline SSIM</th>
<th>re-id top-1</th><th>re-id top-5</th></tr>{metric_rows('train')}{metric_rows('held_out')}</table>
<p>Reconstruction | original, training images then held-out ones, then decodes of random vectors:</p>
<img src="reconstruct/contact_sheet.png" style="max-width:100%">
<h2>Loss curves</h2><img src="loss_curves.png">
<p>Numbers: <a href="report.json">report.json</a>, <a href="transform/summary.json">transform/summary.json</a>,
<a href="reconstruct/run/evaluation.json">reconstruct/run/evaluation.json</a>.</p>
</body></html>
"""
