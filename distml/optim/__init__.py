"""Optimizers and learning-rate schedulers with PyTorch's semantics:

    optimizer = distml.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
"""
from distml.optim import lr_scheduler
from distml.optim.adadelta import Adadelta
from distml.optim.adagrad import Adagrad
from distml.optim.adam import Adam, AdamW
from distml.optim.lbfgs import LBFGS
from distml.optim.optimizer import Optimizer
from distml.optim.rmsprop import RMSprop
from distml.optim.sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "LBFGS", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
