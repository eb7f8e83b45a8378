"""What a newcomer trips over in a fresh clone (issue 23): running ``python -m minvert`` from the
folder above a clone, finding converted and bundled weights by name, help texts that follow the
registries, options checked before any work."""
import subprocess
import sys
from pathlib import Path

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
    assert "vgg19" in proc.stdout
