"""``minvert reconstruct invert`` and ``compare``: the files around invert.py and compare.py.

invert: feature vectors from .npy files, images (encoded first) or cache rows -> one PNG each by
pixel optimisation (invert.py), started from mid-grey, noise, or a trained decoder's output
(``--run``: decoder-initialised refinement); writes <name>_invert.png and invert.json.
compare: the four methods on a run's held-out images -> comparison.json and comparison.png.
"""
import json
from pathlib import Path

import numpy as np

from ..errors import MinvertError
from ..weights.project import write_json
from .compare import compare, figure, table_lines
from .evaluate import _load_vectors, reconstruct_images
from .cache_file import read_cache
from .features import encode, encoder_from_record, load_encoder
from .invert import invert
from .runs import load_decoder, read_run
from ..images import load_image
from ..images import save_image


def _vectors(inputs, cache_path, rows, enc, D):
    """(vectors (n, D) float32, stems): from .npy files and images, then cache rows."""
    vectors, stems = [], []
    for p in map(Path, inputs):
        if p.suffix.lower() == ".npy":
            v, single = _load_vectors(p, D)
            stems += [p.stem] if single else [f"{p.stem}_{i}" for i in range(len(v))]
        else:
            v = encode(enc, [load_image(p)])
            stems.append(p.stem)
        vectors.append(v)
    if cache_path is not None:
        cache = read_cache(cache_path)
        if cache.feature_size != D:
            raise MinvertError(f"{cache_path} holds {cache.feature_size}-d features; the encoder gives {D}-d")
        bad = [r for r in rows if r >= len(cache)]
        if bad:
            raise MinvertError(f"--rows {bad[0]}: the cache holds rows 0..{len(cache) - 1}")
        vectors.append(cache.features[rows])
        stems += [f"row{r:05d}_{Path(cache.names[r]).stem}" for r in rows]
    if not vectors:
        raise MinvertError("nothing to invert; give .npy feature files, images, or --cache with --rows")
    return np.concatenate(vectors).astype(np.float32), stems


def _encoder(model, run, cache_path, device):
    if model is not None:
        return load_encoder(model, device)[0]
    if run is not None:
        return encoder_from_record(run["cache"], None, device)
    if cache_path is not None:
        return encoder_from_record(read_cache(cache_path).header, None, device)
    raise MinvertError("say which encoder made the features: --encoder MODEL (e.g. resnet50), "
                       "or --run / --cache that records it")


def _starts(enc, vectors, run_dir, run, init, seed, device):
    """(N, 3, S, S) starting images in the encoder's input space, and how they were made."""
    S, pre, n = enc.preprocessing.input_size, enc.preprocessing, len(vectors)
    if run_dir is not None:
        dec = load_decoder(run_dir, run, device)
        rec = np.rint(np.clip(reconstruct_images(dec, vectors), 0, 1) * 255).astype(np.uint8)
        x = np.concatenate([pre.prepare(im, dtype=enc.dtype) for im in rec])
        return x, f"the decoder of {run_dir}"
    rng = np.random.default_rng(seed)
    img = (np.full((n, S, S, 3), 127.5) if init == "grey" else rng.uniform(0, 255, (n, S, S, 3)))
    return pre.preprocess(img, dtype=enc.dtype), init


def run_inversion(inputs, out_dir, settings, model=None, run_dir=None, cache_path=None, rows=(),
                  init="grey", force=False, log=print, device=None):
    """Invert every given vector; writes <stem>_invert.png and invert.json into out_dir."""
    run = read_run(run_dir) if run_dir is not None else None
    enc = _encoder(model, run, cache_path, device)
    if run is not None and run["cache"]["model_sha256"] and model is not None:
        encoder_from_record(run["cache"], model, device)  # the decoder's encoder must be this one
    vectors, stems = _vectors(inputs, cache_path, list(rows), enc, enc.feature_size)
    out_dir = Path(out_dir)
    outs = [out_dir / f"{stem}_invert.png" for stem in stems]
    if len(set(outs)) != len(outs):
        raise MinvertError("two inputs have the same name; give them different file names")
    existing = [str(o) for o in outs + [out_dir / "invert.json"] if o.exists()]
    if existing and not force:
        raise MinvertError(f"{existing[0]} exists; pass --force to overwrite or choose another --out")
    x0, start = _starts(enc, vectors, run_dir, run, init, settings.seed, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"invert: {len(vectors)} vector(s) of {vectors.shape[1]}, start: {start}; "
        f"{settings.optimizer}, {settings.iters} iterations")
    x, record = invert(enc, vectors, enc.xp.asarray(x0), settings, log=log)
    for path, img in zip(outs, enc.preprocessing.deprocess(x)):
        save_image(path, img)
    summary = {"start": start, "settings": settings.__dict__, "outputs": [str(o) for o in outs],
               "seconds_per_image": record["seconds"] / len(vectors), "evaluations": record["evaluations"],
               "terms_before": record["before"], "terms_after": record["after"]}
    write_json(out_dir / "invert.json", summary)
    log(f"wrote {len(outs)} image(s) and invert.json into {out_dir}")
    return summary


def run_compare(run_dir, cache_path, settings, refine, max_images=None, encoder=None, log=print,
                device=None):
    """compare() on the run's held-out images (the first max_images); writes comparison.json and
    comparison.png into the run folder and prints the table. Returns the result dict."""
    run = read_run(run_dir)
    rows = run["split"]["test"][:max_images] if max_images else run["split"]["test"]
    if not rows:
        raise MinvertError(f"{run_dir} holds out no images to compare on; train with --split")
    result = compare(run_dir, cache_path, rows=rows, encoder=encoder, settings=settings, refine=refine,
                     log=log, device=device)
    for line in table_lines(result):
        log(line)
    save_image(Path(run_dir) / "comparison.png", figure(result))
    kept = {k: v for k, v in result.items() if k not in ("images", "targets")}
    write_json(Path(run_dir) / "comparison.json", json.loads(json.dumps(kept)))
    log(f"wrote {Path(run_dir) / 'comparison.json'} and comparison.png")
    return result
