"""What a training graph keeps for backward: a convolution keeps its input and weight, never
the unfolded columns (k*k times the input's size); a ResNet keeps about what PyTorch keeps (the
inputs of convolutions and BatchNorms, ReLU outputs that are those same arrays, pooling indices).
Structural checks on the saved arrays, not RSS thresholds."""
import numpy as np
import pytest

import distml
from distml import nn


def saved_arrays(node):
    return {name: v for name, v in vars(node).items() if isinstance(v, np.ndarray)}


def graph_nodes(out):
    nodes, stack, seen = [], [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or not hasattr(node, "next_edges"):
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.next_edges)
    return nodes


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(4, 6, 3, padding=1), (2, 4, 8, 8)),
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9, 9)),
    (lambda: nn.Conv2d(4, 6, 1, stride=2), (2, 4, 8, 8)),
    (lambda: nn.Conv1d(3, 5, 5, dilation=2), (2, 3, 20)),
    (lambda: nn.Conv3d(2, 3, 3, padding=1), (1, 2, 4, 5, 6)),
    (lambda: nn.ConvTranspose2d(4, 3, 3, stride=2), (2, 4, 5, 5)),
])
@pytest.mark.parametrize("weight_grad", [True, False])
def test_a_convolution_keeps_its_input_and_weight_not_columns(make, shape, weight_grad):
    layer = make()
    layer.weight.requires_grad_(weight_grad)
    x = distml.randn(*shape, requires_grad=True)
    out = layer(x)
    saved = saved_arrays(out.grad_fn)
    assert saved["x"] is x.array and saved["weight"] is layer.weight.array
    assert {a.nbytes for a in saved.values()} <= {x.array.nbytes, layer.weight.array.nbytes}
    out.sum().backward()  # the weight gradient unfolds x again
    assert (layer.weight.grad is not None) == weight_grad


def test_resnet18_keeps_the_activations_pytorch_keeps():
    """The kinds of saved arrays are PyTorch's, and the in-place ReLUs' outputs are the very arrays
    the next convolutions keep: nothing is kept twice."""
    from distml.vision.models import resnet18
    model = resnet18(num_classes=10)
    out = model(distml.randn(2, 3, 64, 64))
    params = {id(p.array) for p in model.parameters()}
    kept = {}  # "Node.attribute" -> ids of the saved arrays beyond parameters and per-channel vectors
    for node in graph_nodes(out):
        for name, a in saved_arrays(node).items():
            if id(a) not in params and a.ndim > 1:
                kept.setdefault(f"{type(node).__name__}.{name}", set()).add(id(a))
    assert set(kept) == {"Conv.x", "BatchNorm.x", "Relu.out", "MaxPool.indices", "AdaptiveAvgPool.kron",
                         "Linear.x"}
    assert len(kept["Conv.x"]) == 17 and len(kept["BatchNorm.x"]) == 20 and len(kept["Relu.out"]) == 17
    # every ReLU output is a convolution's input, but the stem's (max-pooled) and the last block's (averaged)
    assert len(kept["Relu.out"] - kept["Conv.x"]) == 2
