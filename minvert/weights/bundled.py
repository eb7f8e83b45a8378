"""The registry of the small models that ship inside the package (minvert/data/NAME.h5).

Every list of bundled models a user sees (``weights list``, ``classify --help``, ``reconstruct
extract --help``, the unknown-model error) is made from ``BUNDLED_MODELS``; a test checks it
against the files themselves (architecture, dataset, labels). weights/README.md says how each
was trained.
"""
from dataclasses import dataclass
from pathlib import Path

from ..datasets import dataset_classes

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class BundledModel:
    """arch: the ``minvert train --arch`` that made it; dataset: the generated dataset it was
    trained on (its classes are the model's labels); use: what minvert uses it for."""
    arch: str
    dataset: str
    use: str

    def describe(self):
        return (f"{self.arch} trained on the generated {self.dataset} "
                f"({len(dataset_classes(self.dataset))} classes); {self.use}")


BUNDLED_MODELS = {
    "tiny-vgg-textures": BundledModel("tiny-vgg", "textures", "paper 000's demo network (transform)"),
    "tiny-resnet-textures": BundledModel("tiny-resnet", "textures", "a small ResNet classifier"),
    "tiny-resnet-shapes": BundledModel("tiny-resnet", "shapes", "paper 003's demo encoder (reconstruct)"),
}
BUNDLED = tuple(BUNDLED_MODELS)


def bundled_path(name):
    """Where the bundled model ``name`` lives (it may be missing from a broken installation)."""
    return BUNDLED_DIR / f"{name}.h5"


def bundled_encoders():
    """The bundled models ``reconstruct extract`` can use as its encoder (the ResNets)."""
    return tuple(n for n, m in BUNDLED_MODELS.items() if m.arch == "tiny-resnet")
