"""Optimizers and learning-rate schedulers with PyTorch's semantics:

    optimizer = distml.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
"""
from distml.optim import lr_scheduler
from distml.optim.adadelta import Adadelta
from distml.optim.adafactor import Adafactor
from distml.optim.adagrad import Adagrad
from distml.optim.adam import Adam, AdamW
from distml.optim.adamax import Adamax
from distml.optim.asgd import ASGD
from distml.optim.lbfgs import LBFGS
from distml.optim.nadam import NAdam
from distml.optim.optimizer import Optimizer
from distml.optim.radam import RAdam
from distml.optim.rmsprop import RMSprop
from distml.optim.rprop import Rprop
from distml.optim.sgd import SGD
from distml.optim.sparse_adam import SparseAdam

__all__ = ["ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam", "Optimizer",
           "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam", "lr_scheduler"]
