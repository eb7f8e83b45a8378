"""Networks built from minvert's layers: VGG, ResNet, the paper-003 decoder, tiny models."""
from ..errors import MinvertError
from .decoder import build_decoder
from .resnet import build_resnet
from .vgg import build_vgg


def build(config, **kwargs):
    """Build the network an arch ``config`` dict describes (as stored in weight files)."""
    if not isinstance(config, dict):
        raise MinvertError(f"the model config is a {type(config).__name__}, not an object; "
                           "the file is damaged")
    arch = config.get("arch")
    if arch == "vgg":
        return build_vgg(config, **kwargs)
    if arch == "resnet":
        return build_resnet(config, **kwargs)
    if arch == "decoder":
        kwargs.pop("preprocessing", None), kwargs.pop("labels", None)
        return build_decoder(config, **kwargs)
    raise MinvertError(f"unknown architecture {arch!r} in the model config")
