"""The layers: each a Module over the matching nn.functional call."""
from distml.nn.modules.adaptive import AdaptiveLogSoftmaxWithLoss
from distml.nn.modules.activation import ELU, GELU, Hardtanh, LeakyReLU, LogSoftmax, ReLU, ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh
from distml.nn.modules.activation import (CELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish, LogSigmoid, Mish, PReLU,
                                          RReLU, Softmax2d, Softmin, Softshrink, Softsign, Tanhshrink, Threshold)
from distml.nn.modules.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from distml.nn.modules.conv import Conv1d, Conv2d, ConvTranspose2d
from distml.nn.modules.distance import CosineSimilarity, PairwiseDistance
from distml.nn.modules.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from distml.nn.modules.flatten import Flatten, Unflatten
from distml.nn.modules.linear import Bilinear, Identity, Linear
from distml.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, HuberLoss,
                                    KLDivLoss, L1Loss, MSELoss, NLLLoss, PoissonNLLLoss, SmoothL1Loss)
from distml.nn.modules.loss import (CosineEmbeddingLoss, CTCLoss, HingeEmbeddingLoss, MarginRankingLoss,
                                    MultiLabelMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss2d,
                                    SoftMarginLoss, TripletMarginLoss, TripletMarginWithDistanceLoss)
from distml.nn.modules.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from distml.nn.modules.normalization import (BatchNorm3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                                             LocalResponseNorm, RMSNorm)
from distml.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from distml.nn.modules.padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d,
                                       ConstantPad3d, ReflectionPad1d, ReflectionPad2d, ReflectionPad3d,
                                       ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
                                       ZeroPad3d)
from distml.nn.modules.sparse import Embedding
from distml.nn.modules.rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell, RNNCellBase
from distml.nn.modules.transformer import (MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer,
                                           TransformerEncoder, TransformerEncoderLayer)

__all__ = [
    "ELU", "GELU", "Hardtanh", "LeakyReLU", "ReLU6", "LogSoftmax", "ReLU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
    "ModuleDict", "ModuleList", "Sequential", "Conv1d", "Conv2d", "ConvTranspose2d", "Dropout", "Flatten",
    "Unflatten", "Identity", "Linear", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss",
    "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "PoissonNLLLoss", "GaussianNLLLoss", "CosineSimilarity",
    "CosineEmbeddingLoss", "CTCLoss", "HingeEmbeddingLoss", "MarginRankingLoss", "MultiLabelMarginLoss",
    "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss2d", "SoftMarginLoss", "TripletMarginLoss",
    "TripletMarginWithDistanceLoss", "AdaptiveLogSoftmaxWithLoss",
    "PairwiseDistance", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm",
    "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "RMSNorm",
    "AdaptiveAvgPool2d", "AvgPool2d", "MaxPool2d", "Embedding",
    "CELU", "GLU", "SELU", "Hardshrink", "Hardsigmoid", "Hardswish", "LogSigmoid", "Mish", "PReLU", "RReLU",
    "Softmax2d", "Softmin", "Softshrink", "Softsign", "Tanhshrink", "Threshold",
    "AlphaDropout", "Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout", "Bilinear",
    "ParameterDict", "ParameterList",
    "CircularPad1d", "CircularPad2d", "CircularPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase",
    "MultiheadAttention", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer",
]
