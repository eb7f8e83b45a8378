"""What a newcomer trips over in a fresh clone (issue 23): running ``python -m minvert`` from the
folder above a clone, finding converted and bundled weights by name, help texts that follow the
registries, options checked before any work."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imitates setuptools' editable install for a repository whose top holds more than the package:
# a finder *after* Python's own path finder maps the name minvert to this checkout's package.
EDITABLE_RUN = """
import importlib.machinery, runpy, sys
ROOT = {root!r}
class EditableFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] != "minvert":
            return None
        parent = "/".join([ROOT] + name.split(".")[:-1])
        return importlib.machinery.PathFinder.find_spec(name, [parent])
sys.meta_path.append(EditableFinder)
import minvert
assert getattr(minvert, "__file__", None) is None, "the clone folder should shadow the package here"
sys.argv = ["minvert", "weights", "list"]
runpy.run_module("minvert", run_name="__main__", alter_sys=True)
"""


def test_python_m_minvert_from_the_folder_above_a_clone_named_minvert(tmp_path):
    clone = tmp_path / "minvert"  # a clone: no __init__.py at its top, folders named like sub-packages
    for folder in ("weights", "tests", "docs"):
        (clone / folder).mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", EDITABLE_RUN.format(root=str(ROOT))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vgg19" in proc.stdout and "tiny-vgg-textures" in proc.stdout


# -- converted weights found by name (item 6) --------------------------------------------------
def _one_line_error(capsys, status):
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("minvert: error: ") and err.count("\n") == 1, err
    return err


def test_convert_to_a_name_installs_it_lists_it_and_finds_it(tmp_path, monkeypatch, capsys):
    from minvert.cli import main
    from minvert.weights import resolve_model
    monkeypatch.setenv("MINVERT_WEIGHTS", str(tmp_path / "weights-folder"))
    monkeypatch.chdir(tmp_path)
    source = ROOT / "tests" / "fixtures" / "keras" / "vgg19_top.h5"
    assert main(["convert", str(source), "my-vgg"]) == 0
    said = capsys.readouterr().out
    installed = tmp_path / "weights-folder" / "my-vgg.h5"
    assert installed.is_file() and "--model my-vgg" in said
    assert resolve_model("my-vgg") == installed
    assert main(["weights", "list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["my-vgg", "installed", "vgg19"] in [r[:3] for r in rows]
    assert main(["weights", "info", "my-vgg"]) == 0
    assert str(installed) in capsys.readouterr().out
    # a path stays a path: written where it says, not installed
    assert main(["convert", str(source), "here.h5"]) == 0
    assert (tmp_path / "here.h5").is_file() and not (tmp_path / "weights-folder" / "here.h5").exists()
    capsys.readouterr()
    err = _one_line_error(capsys, main(["convert", str(source), "tiny-vgg-textures"]))
    assert "bundled" in err


def test_a_zoo_name_not_downloaded_names_the_path_form_and_convert(tmp_path, monkeypatch, capsys):
    from minvert.cli import main
    monkeypatch.setenv("MINVERT_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, main(["classify", str(tmp_path / "x.png"), "--model", "vgg19"]))
    assert "minvert convert FILE vgg19" in err and "vgg19.h5" in err and "weights download vgg19" in err


# -- bundled models from the registry (item 7) ----------------------------------------------
def test_the_bundled_registry_matches_the_files():
    from minvert.datasets import dataset_classes
    from minvert.weights.bundled import BUNDLED_DIR, BUNDLED_MODELS
    from minvert.weights.project import read_header
    assert sorted(p.stem for p in BUNDLED_DIR.glob("*.h5")) == sorted(BUNDLED_MODELS)
    for name, model in BUNDLED_MODELS.items():
        header = read_header(BUNDLED_DIR / f"{name}.h5")
        assert header["labels"] == list(dataset_classes(model.dataset)), name
        assert model.arch == f"tiny-{header['config']['arch']}", name
        assert header["source"]["name"] == name


def test_weights_list_and_info_know_the_bundled_models(capsys):
    from minvert.cli import main
    from minvert.weights.bundled import BUNDLED_MODELS
    assert main(["weights", "list"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    for name in BUNDLED_MODELS:
        assert listed[name] == "bundled"
        assert main(["weights", "info", name]) == 0
        assert f"{name}.h5: minvert weights" in capsys.readouterr().out


def _help(capsys, *argv):
    from minvert.cli import main
    try:
        main([*argv, "--help"])
    except SystemExit as e:
        assert e.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_texts_follow_the_registries(capsys):
    from minvert.datasets import dataset_classes
    from minvert.weights.bundled import BUNDLED_MODELS, bundled_encoders
    classify = _help(capsys, "classify")
    assert all(name in classify for name in BUNDLED_MODELS)
    extract = _help(capsys, "reconstruct", "extract")
    assert set(bundled_encoders()) == {"tiny-resnet-textures", "tiny-resnet-shapes"}
    assert all(name in extract for name in bundled_encoders())
    dataset = _help(capsys, "dataset")
    train = _help(capsys, "train")
    for kind in ("textures", "shapes"):
        count = len(dataset_classes(kind))
        assert f"{kind}: {count} classes" in dataset
        assert f"'{kind}' ({count} " in train
    for name, model in BUNDLED_MODELS.items():
        assert name in dataset


# -- reconstruct extract on what `minvert dataset` writes (item 17), options checked first (item 8)
@pytest.fixture(scope="module")
def shapes_cache(tmp_path_factory):
    """`minvert dataset shapes` (one image per class) extracted from its folder."""
    from minvert.cli import main
    root = tmp_path_factory.mktemp("newcomer")
    assert main(["dataset", "shapes", "--out", str(root / "shapes"), "--n", "1", "--size", "16"]) == 0
    assert main(["reconstruct", "extract", str(root / "shapes"), "--model", "tiny-resnet-shapes",
                 "--out", str(root / "cache.h5"), "--target-size", "16"]) == 0
    return root


def test_extract_takes_a_folder_of_class_folders_and_mixes_the_paper_split(shapes_cache, capsys):
    from minvert.datasets import dataset_classes
    from minvert.reconstruct.cache_file import read_cache
    from minvert.reconstruct.runs import make_split
    cache = read_cache(shapes_cache / "cache.h5")
    classes = [Path(n if isinstance(n, str) else n.decode()).parent.name for n in cache.names]
    assert sorted(classes) == sorted(dataset_classes("shapes"))  # every image, dataset.json left out
    held_out = [classes[i] for i in make_split(len(cache), "paper")[1]]
    assert len(set(held_out)) == 10
    colours, shapes, backgrounds = ({c.split("-")[k] for c in held_out} for k in (0, 1, 3))
    assert len(colours) >= 3 and len(shapes) >= 3 and backgrounds == {"dark", "light"}, held_out


def test_figure_sizes_refuses_every_impossible_size_before_training(shapes_cache, capsys):
    from minvert.cli import main
    out = shapes_cache / "sizes"
    err = _one_line_error(capsys, main(["reconstruct", "figure", "sizes", str(shapes_cache / "cache.h5"),
                                        "--sizes", "2,1000,23", "--epochs", "1", "--out", str(out)]))
    assert "1000,23" in err and "22 training images" in err and "nothing was trained" in err
    assert not out.exists()


def test_demo_on_a_missing_gpu_refuses_before_writing(tmp_path):
    probe = subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True, env={
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    if probe.returncode == 0:
        pytest.skip("CuPy is installed here: the GPU may exist")
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "minvert", "demo", "--device", "gpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert proc.returncode == 1 and proc.stderr.startswith("minvert: error: "), proc.stderr
    assert "CuPy" in proc.stderr and not out.exists()


def test_evaluate_explains_its_fractions(shapes_cache):
    from minvert.reconstruct.evaluate import evaluate
    from minvert.reconstruct.train import train
    run = shapes_cache / "run"
    train(shapes_cache / "cache.h5", run, epochs=1, log=lambda *_: None)
    lines = []
    evaluate(run, shapes_cache / "cache.h5", log=lines.append)
    legend = [line for line in lines if line.startswith("re-id: ")]
    assert len(legend) == 1 and "all 32 cached images" in legend[0] and "1/32 and 5/32" in legend[0]
    assert "targets" in legend[0] and "mean-image" in legend[0]


def test_gitignore_covers_the_demo_folder():
    probe = subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q",
                              "minvert-demo/index.html"])
    assert ignored.returncode == 0, "minvert demo's default --out folder should be ignored by git"


# -- messages (item 13) --------------------------------------------------------------------------
@pytest.mark.parametrize("argv,command", [
    (["classify", "--bogus", "x.png", "--model", "m"], "minvert classify"),
    (["reconstruct", "extract", "a.png", "--model", "m", "--out", "c.h5", "--nope"],
     "minvert reconstruct extract"),
    (["--bogus"], "minvert"),
])
def test_an_unknown_option_points_to_the_help_of_its_subcommand(argv, command, capsys):
    """One line, like every minvert error, naming the sub-command's own --help (argparse alone
    would show the top-level usage)."""
    from minvert.cli import main
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("minvert: error: "), err
    assert f"unrecognized arguments: {next(a for a in argv if a in ('--bogus', '--nope'))}" in err[0]
    assert err[0].endswith(f"(see `{command} --help`)"), err[0]


def test_exercise_check_of_a_missing_file_is_one_error_line(capsys):
    from minvert.cli import main
    err = _one_line_error(capsys, main(["exercise", "check", "nonexist.py"]))
    assert "nonexist.py: no such file" in err and "ex01_dense.py" in err


def test_the_summary_blames_the_forward_that_raised(tmp_path):
    from minvert.exercises import check_file
    student = tmp_path / "ex01_mine.py"
    student.write_text("def dense_forward(x, w, b):\n    raise ValueError('oops')\n\n\n"
                       "def dense_backward(dout, cache):\n    return None\n")
    lines = []
    assert not check_file(student, out=lines.append, seed=1)
    assert lines[-1] == "result: dense_forward FAIL", lines


def test_solution_files_check_themselves_like_the_skeletons(tmp_path):
    import ast
    solutions = sorted((ROOT / "tutorials" / "exercises" / "solutions").glob("ex*.py"))
    assert len(solutions) == 16
    for path in solutions:
        tree = ast.parse(path.read_text())
        main_blocks = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        assert len(main_blocks) == 1 and "check_file(__file__)" in ast.unparse(main_blocks[0]), path.name
    proc = subprocess.run([sys.executable, str(solutions[1])], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0 and "result: relu_backward PASS" in proc.stdout, proc.stdout + proc.stderr


def test_a_folder_with_images_of_its_own_is_read_as_before(tmp_path):
    from minvert.reconstruct.features import _expand_paths
    (tmp_path / "photos" / "thumbnails").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "thumbnails/a.png"):
        (tmp_path / "photos" / name).write_bytes(b"")
    found = _expand_paths([tmp_path / "photos"], log=lambda *_: None)
    assert [Path(p).name for p in found] == ["a.jpg", "b.png"]
