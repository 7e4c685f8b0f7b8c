"""What every model builder shares: the `weights=` / `pretrained=` rules and torchvision's named-argument guard."""
import os
from collections.abc import Mapping

import distml


def _ovewrite_named_param(kwargs, name, value):
    """Set kwargs[name] to the value a builder fixes, refusing a different one (torchvision's rule and wording)."""
    if name in kwargs and kwargs[name] != value:
        raise ValueError(f"The parameter '{name}' expected value {value} but got {kwargs[name]} instead.")
    kwargs[name] = value


def _build(model_class, weights, pretrained, *args, **kwargs):
    """model_class(*args, **kwargs) with `weights` loaded into it.

    `weights` is None (random initialisation), a state_dict, or the path of a checkpoint
    (distml.save / torch.save / .safetensors). torchvision's named pretrained weights
    (`weights="IMAGENET1K_V1"`, `pretrained=True`) would need a download, which distml does not do.
    Bad `weights` are refused before the model is built (large models take seconds to initialise).
    """
    if pretrained:
        raise ValueError("pretrained=True asks for torchvision's pretrained weights, which distml cannot download; "
                         "pass weights= a checkpoint path or a state_dict instead")
    if weights is None or isinstance(weights, Mapping):
        state = weights
    elif isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        state = distml.load(weights, map_location="cpu")
    else:
        raise ValueError(f"weights={weights!r}: pass the path of a checkpoint file holding this model's state_dict "
                         f"(written by distml.save or torch.save, or a .safetensors file) or the state_dict itself; "
                         f"torchvision's named pretrained weights cannot be downloaded by distml")
    model = model_class(*args, **kwargs)
    if state is not None:
        model.load_state_dict(state)
    return model
