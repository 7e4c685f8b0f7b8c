"""Loss primitives whose fused gradient beats composing ops: cross-entropy on class indices
(log-softmax + NLL + label smoothing in one `_C` pass, its gradient computed alongside),
NLL on log-probabilities, binary cross-entropy on probabilities and on logits."""
import numpy as np

from distml._backend import C, get_array_module
from distml.autograd.function import Primitive


def _reduce(loss, target_weight, reduction):
    """Returns (value, scale): the reduced loss and d value / d loss[i] for sum and mean."""
    if reduction == "none":
        return loss, None
    if reduction == "sum":
        return loss.sum(), 1.0
    total = target_weight.sum()
    with np.errstate(divide="ignore", invalid="ignore"):  # every target ignored: nan, as in PyTorch
        return loss.sum() / total, 1.0 / total


class CrossEntropy(Primitive):
    """Cross-entropy of logits (N, C, L) against class indices (N, L): per position
    -(1 - eps) w[y] logp[y] - eps / C sum_c w[c] logp[c], positions with ignore_index left
    out; "mean" divides by the sum of w[y] over the positions kept (PyTorch's weighted mean)."""
    saves_inputs = False

    def forward(self, logits, target, weight, ignore_index, label_smoothing, reduction, compute_grad):
        N, C_, L = logits.shape
        if isinstance(logits, np.ndarray):
            loss = np.empty((N, L), dtype=logits.dtype)
            target_weight = np.empty((N, L), dtype=logits.dtype)
            self.dlogits = np.empty(logits.shape, dtype=logits.dtype) if compute_grad else None
            C.cross_entropy(np.ascontiguousarray(logits), np.ascontiguousarray(target, dtype=np.int64),
                            None if weight is None else np.ascontiguousarray(weight, dtype=logits.dtype), loss,
                            target_weight, self.dlogits, N, C_, L, ignore_index, label_smoothing)
        else:
            loss, target_weight, self.dlogits = _cross_entropy_xp(logits, target, weight, ignore_index,
                                                                   label_smoothing, compute_grad)
        out, self.scale = _reduce(loss, target_weight, reduction)
        return out

    def backward(self, grad):
        if self.scale is None:
            return grad[:, None, :] * self.dlogits
        return self.dlogits * (grad * self.scale)


def _class_weights(xp, weight, C_, dtype):
    return xp.ones(C_, dtype=dtype) if weight is None else weight.astype(dtype, copy=False)


def _valid_targets(xp, target, C_, ignore_index):
    valid = target != ignore_index
    bad = valid & ((target < 0) | (target >= C_))
    if bad.any():
        raise IndexError(f"Target {int(target[bad][0])} is out of bounds.")
    return valid, xp.where(valid, target, 0)


def _cross_entropy_xp(logits, target, weight, ignore_index, eps, compute_grad):
    xp = get_array_module(logits)
    C_ = logits.shape[1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    valid, safe = _valid_targets(xp, target, C_, ignore_index)
    w = _class_weights(xp, weight, C_, logits.dtype)
    w_y = w[safe] * valid
    logp_y = xp.take_along_axis(logp, safe[:, None, :], axis=1)[:, 0]
    smooth = (w[None, :, None] * logp).sum(axis=1)
    loss = -(1 - eps) * w_y * logp_y - (eps / C_) * smooth * valid
    grad = None
    if compute_grad:
        p = xp.exp(logp)
        onehot = xp.arange(C_)[None, :, None] == safe[:, None, :]
        grad = (1 - eps) * w_y[:, None] * (p - onehot) + (eps / C_) * (p * w.sum() - w[None, :, None])
        grad = grad * valid[:, None]
    return loss.astype(logits.dtype), w_y.astype(logits.dtype), grad


class NllLoss(Primitive):
    """-w[y] * logp[y] on log-probabilities (N, C, L) and class indices (N, L), reduced as CrossEntropy."""
    saves_inputs = False

    def forward(self, logp, target, weight, ignore_index, reduction):
        xp = get_array_module(logp)
        C_ = logp.shape[1]
        valid, self.safe = _valid_targets(xp, target, C_, ignore_index)
        self.w_y = _class_weights(xp, weight, C_, logp.dtype)[self.safe] * valid
        self.shape, self.dtype = logp.shape, logp.dtype
        loss = -self.w_y * xp.take_along_axis(logp, self.safe[:, None, :], axis=1)[:, 0]
        out, self.scale = _reduce(loss, self.w_y, reduction)
        return out

    def backward(self, grad):
        xp = get_array_module(grad)
        grad_logp = xp.zeros(self.shape, dtype=self.dtype)
        values = -self.w_y * (grad if self.scale is None else grad * self.scale)
        xp.put_along_axis(grad_logp, self.safe[:, None, :], values[:, None, :].astype(self.dtype), axis=1)
        return grad_logp


class BinaryCrossEntropy(Primitive):
    """-w (y log x + (1 - y) log(1 - x)) elementwise, each log clamped at -100 as in PyTorch."""

    def forward(self, x, y, weight):
        xp = get_array_module(x)
        self.x, self.y, self.weight = x, y, weight
        self.log_x = xp.maximum(xp.log(x), -100)
        self.log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = -(y * self.log_x + (1 - y) * self.log_1mx)
        return loss if weight is None else loss * weight

    def backward(self, grad):
        xp = get_array_module(grad)
        x, y = self.x, self.y
        grad = grad if self.weight is None else grad * self.weight
        grad_x = grad * (x - y) / xp.maximum((1 - x) * x, 1e-12) if self.needs_input_grad[0] else None
        grad_y = grad * (self.log_1mx - self.log_x) if self.needs_input_grad[1] else None
        return grad_x, grad_y


class BinaryCrossEntropyWithLogits(Primitive):
    """-w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) elementwise with p = pos_weight,
    computed as (1 - y) x + (1 + (p - 1) y) softplus(-x) so that it never overflows."""

    def forward(self, x, y, weight, pos_weight):
        xp = get_array_module(x)
        self.x, self.y, self.weight, self.pos_weight = x, y, weight, pos_weight
        self.softplus = xp.logaddexp(0, -x)
        scale = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + scale * self.softplus
        return (loss if weight is None else loss * weight).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = get_array_module(grad)
        x, y, pos_weight = self.x, self.y, self.pos_weight
        grad = grad if self.weight is None else grad * self.weight
        grad_x = grad_y = None
        if self.needs_input_grad[0]:
            scale = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
            sigmoid_neg = xp.exp(-self.softplus - x)  # sigmoid(-x) = exp(-x - softplus(-x))
            grad_x = grad * ((1 - y) - scale * sigmoid_neg)
        if self.needs_input_grad[1]:
            grad_y = grad * (-x if pos_weight is None else -x + (pos_weight - 1) * self.softplus)
        return grad_x, grad_y
