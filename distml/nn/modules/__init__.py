"""The layers: each a Module over the matching nn.functional call."""
from distml.nn.modules.activation import ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh
from distml.nn.modules.container import ModuleDict, ModuleList, Sequential
from distml.nn.modules.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from distml.nn.modules.distance import CosineSimilarity, PairwiseDistance
from distml.nn.modules.dropout import Dropout
from distml.nn.modules.flatten import Flatten, Unflatten
from distml.nn.modules.fold import Fold, Unfold
from distml.nn.modules.linear import Identity, Linear
from distml.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss,
                                    KLDivLoss, L1Loss, MSELoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss)
from distml.nn.modules.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from distml.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from distml.nn.modules.sparse import Embedding

__all__ = [
    "ELU", "GELU", "Hardtanh", "LeakyReLU", "ReLU6", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "ModuleDict", "ModuleList", "Sequential", "Conv1d", "Conv2d", "ConvTranspose2d", "Dropout", "Flatten",
    "Conv3d", "ConvTranspose1d", "ConvTranspose3d", "Fold", "Unfold",
    "Unflatten", "Identity", "Linear", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss",
    "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "PoissonNLLLoss", "GaussianNLLLoss", "CosineSimilarity",
    "PairwiseDistance", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm",
    "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "Embedding",
]
