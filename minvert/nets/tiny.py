"""The small bundled classifiers, trained by minvert itself on its generated datasets.

* ``tiny-vgg-textures``: 3x3 convs + max-pools + fc, with VGG's layer names
  (``conv1_1 ... pool3, flatten, fc6, relu6, fc7``) so paper 000's code runs unchanged on it.
* ``tiny-resnet-textures``: basic residual blocks with batch-norm, global average pool, fc.
* ``tiny-resnet-shapes``: the same network trained on the shapes dataset (:mod:`minvert.shapes`,
  32 classes of colour x shape x background); its 128-d pooled feature carries colour, shape and
  scene, and stands in for ResNet-50's 2048-d one in paper 003's experiment.

Both take 64x64 RGB scaled to [0, 1] ("unit" preprocessing).
"""
from .preprocessing import Preprocessing
from .resnet import build_resnet
from .vgg import build_vgg

INPUT_SIZE = 64

TINY_CONFIGS = {
    "tiny-vgg": {"arch": "vgg", "depth": None, "convs": [1, 1, 2], "widths": [16, 32, 64],
                 "fc": [64], "num_classes": 8, "include_top": True, "pool": "max",
                 "input_size": INPUT_SIZE},
    "tiny-resnet": {"arch": "resnet", "depth": 18, "blocks": [1, 1, 1, 1], "bottleneck": False,
                    "variant": "v1.5", "width": 16, "num_classes": 8, "include_top": True,
                    "bn_eps": 1e-5, "conv_bias": False},
}


def build_tiny(name, num_classes, labels=None, rng=None, input_size=INPUT_SIZE):
    """A fresh, randomly initialised tiny classifier ('tiny-vgg' or 'tiny-resnet')."""
    if name not in TINY_CONFIGS:
        raise KeyError(name)
    config = dict(TINY_CONFIGS[name], num_classes=num_classes)
    pre = Preprocessing(mode="unit", input_size=input_size, resize=None)
    if config["arch"] == "vgg":
        return build_vgg(dict(config, input_size=input_size), rng=rng, preprocessing=pre, labels=labels)
    return build_resnet(config, rng=rng, preprocessing=pre, labels=labels)
