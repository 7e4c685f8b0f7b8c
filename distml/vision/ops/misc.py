"""Conv2dNormActivation and MLP: the blocks torchvision's models are assembled from (torchvision.ops.misc)."""
from distml import nn


class Conv2dNormActivation(nn.Sequential):
    """Conv2d -> norm -> activation, numbered 0, 1, 2 as torchvision's: `Conv2dNormActivation(3, 32, stride=2)`.

    padding defaults to "same" for odd kernels ((kernel_size - 1) // 2 * dilation); the conv has a bias
    only when there is no norm layer (bias=None).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer() if inplace is None else activation_layer(inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


class MLP(nn.Sequential):
    """Linear -> [norm] -> activation -> Dropout for each hidden size, then Linear -> Dropout for the last:
    `MLP(768, [3072, 768], activation_layer=nn.GELU, inplace=None, dropout=0.1)`."""

    def __init__(self, in_channels, hidden_channels, norm_layer=None, activation_layer=nn.ReLU, inplace=None,
                 bias=True, dropout=0.0):
        extra = {} if inplace is None else {"inplace": inplace}
        layers = []
        in_dim = in_channels
        for hidden_dim in hidden_channels[:-1]:
            layers.append(nn.Linear(in_dim, hidden_dim, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(hidden_dim))
            layers.append(activation_layer(**extra))
            layers.append(nn.Dropout(dropout, **extra))
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, hidden_channels[-1], bias=bias))
        layers.append(nn.Dropout(dropout, **extra))
        super().__init__(*layers)
