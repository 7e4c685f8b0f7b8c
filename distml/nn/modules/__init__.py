"""The layers: each a Module over the matching nn.functional call, in torch.nn.modules' files."""
from distml.nn.module import Module
from distml.nn.modules.activation import (CELU, ELU, GELU, GLU, SELU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh,
                                          LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU, ReLU6, RReLU, SiLU,
                                          Sigmoid, Softmax, Softmax2d, Softmin, Softplus, Softshrink, Softsign, Tanh,
                                          Tanhshrink, Threshold)
from distml.nn.modules.adaptive import AdaptiveLogSoftmaxWithLoss
from distml.nn.modules.channelshuffle import ChannelShuffle
from distml.nn.modules.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from distml.nn.modules.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from distml.nn.modules.distance import CosineSimilarity, PairwiseDistance
from distml.nn.modules.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from distml.nn.modules.flatten import Flatten, Unflatten
from distml.nn.modules.fold import Fold, Unfold
from distml.nn.modules.linear import Bilinear, Identity, Linear
from distml.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, CTCLoss,
                                    GaussianNLLLoss, HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss,
                                    MarginRankingLoss, MSELoss, MultiLabelMarginLoss, MultiLabelSoftMarginLoss,
                                    MultiMarginLoss, NLLLoss, NLLLoss2d, PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss,
                                    TripletMarginLoss, TripletMarginWithDistanceLoss)
from distml.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d, SyncBatchNorm
from distml.nn.modules.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d
from distml.nn.modules.normalization import GroupNorm, LayerNorm, LocalResponseNorm, RMSNorm
from distml.nn.modules.padding import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d,
                                       ConstantPad3d, ReflectionPad1d, ReflectionPad2d, ReflectionPad3d,
                                       ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, ZeroPad1d, ZeroPad2d,
                                       ZeroPad3d)
from distml.nn.modules.pixelshuffle import PixelShuffle, PixelUnshuffle
from distml.nn.modules.pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d,
                                       AdaptiveMaxPool2d, AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d,
                                       LPPool2d, LPPool3d, MaxPool1d, MaxPool2d, MaxPool3d, MaxUnpool1d, MaxUnpool2d,
                                       MaxUnpool3d)
from distml.nn.modules.rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell, RNNCellBase
from distml.nn.modules.sparse import Embedding, EmbeddingBag
from distml.nn.modules.transformer import (MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer,
                                           TransformerEncoder, TransformerEncoderLayer)
from distml.nn.modules.upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

# Every layer imported above (`from distml.nn.modules import *` is how distml.nn gets them).
__all__ = sorted(name for name, value in list(globals().items())
                 if isinstance(value, type) and issubclass(value, Module) and value is not Module)
