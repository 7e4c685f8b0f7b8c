"""Neural-network building blocks: Module, Parameter, the layers and losses, init, utils.

    from distml import nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
"""
from distml.nn.module import Module
from distml.nn.parameter import Buffer, Parameter
from distml.nn.modules import *  # noqa: F401,F403
from distml.nn import functional, init, parallel, utils  # noqa: E402
from distml.nn.parallel import DataParallel  # noqa: E402
