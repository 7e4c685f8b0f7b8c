"""The layers: each a Module over the matching nn.functional call."""
from distml.nn.modules.activation import ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh
from distml.nn.modules.container import ModuleDict, ModuleList, Sequential
from distml.nn.modules.conv import Conv1d, Conv2d, ConvTranspose2d
from distml.nn.modules.distance import CosineSimilarity, PairwiseDistance
from distml.nn.modules.dropout import Dropout
from distml.nn.modules.flatten import Flatten, Unflatten
from distml.nn.modules.linear import Identity, Linear
from distml.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss,
                                    KLDivLoss, L1Loss, MSELoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss)
from distml.nn.modules.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from distml.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d,
                                       AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d,
                                       LPPool2d, LPPool3d, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool1d, MaxUnpool2d,
                                       MaxUnpool3d)
from distml.nn.modules.sparse import Embedding, EmbeddingBag
from distml.nn.modules.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from distml.nn.modules.pixelshuffle import PixelShuffle, PixelUnshuffle
from distml.nn.modules.channelshuffle import ChannelShuffle

__all__ = [
    "ELU", "GELU", "Hardtanh", "LeakyReLU", "ReLU6", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "ModuleDict", "ModuleList", "Sequential", "Conv1d", "Conv2d", "ConvTranspose2d", "Dropout", "Flatten",
    "Unflatten", "Identity", "Linear", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss",
    "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "PoissonNLLLoss", "GaussianNLLLoss", "CosineSimilarity",
    "PairwiseDistance", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm",
    "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "Embedding",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AvgPool1d", "AvgPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "MaxPool1d", "MaxPool3d", "MaxUnpool1d",
    "MaxUnpool2d", "MaxUnpool3d", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d", "PixelShuffle",
    "PixelUnshuffle", "ChannelShuffle", "EmbeddingBag",
]
