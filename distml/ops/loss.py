"""Loss primitives whose fused gradient beats composing ops: cross-entropy on class indices
(log-softmax + NLL + label smoothing in one `_C` pass, its gradient computed alongside),
NLL on log-probabilities, binary cross-entropy on probabilities and on logits, and CTC (its
alpha-beta recursions in `_C`, with an array version for other devices)."""
import numpy as np

from distml import kernels
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
        xp = kernels.compiled("cross_entropy", logits, kernels.FLOATS)
        if xp is not None:
            _valid_targets(xp, target, C_, ignore_index)  # raises here: the CUDA kernel cannot
            loss = xp.empty((N, L), dtype=logits.dtype)
            target_weight = xp.empty((N, L), dtype=logits.dtype)
            self.dlogits = xp.empty(logits.shape, dtype=logits.dtype) if compute_grad else None
            C.cross_entropy(xp.ascontiguousarray(logits), xp.ascontiguousarray(target, dtype=np.int64),
                            None if weight is None else xp.ascontiguousarray(weight, dtype=logits.dtype), loss,
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
    loss = -(1 - eps) * w_y * logp_y
    if eps:  # only then: a logit of -inf would make the smoothing term 0 * -inf
        loss = loss - (eps / C_) * (w[None, :, None] * logp).sum(axis=1) * valid
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


def _logsumexp3(a, b, c, floor):
    """log(exp(a) + exp(b) + exp(c)) elementwise; -inf where all three are -inf. `floor` (the
    dtype's lowest number) stands in for a maximum of -inf; the caller silences log(0)."""
    xp = get_array_module(a)
    m = xp.maximum(xp.maximum(xp.maximum(a, b), c), floor)
    return m + xp.log(xp.exp(a - m) + xp.exp(b - m) + xp.exp(c - m))


class CTCLoss(Primitive):
    """Per-sample negative log-likelihood of CTC on log_probs (T, N, C), targets (N, S) padded,
    input_lengths and target_lengths (N,): the forward variable alpha by its recursion in log
    space over the extended labels (blank, y1, blank, y2, ..., blank); backward from alpha and
    beta. As PyTorch's, the gradient is exp(log_probs) - sum_s alpha beta / (p exp(log_probs)),
    the gradient through a log_softmax that produced log_probs (the first term cancels there);
    time steps past a sample's input length get zero. zero_infinity turns infinite losses
    (impossible alignments) and their gradients into zeros. On the CPU one `_C` kernel each way
    (kernels/ctc.h); elsewhere the array version, vectorised over the batch."""
    saves_inputs = False

    def forward(self, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
        xp = get_array_module(log_probs)
        self.inputs = (log_probs, targets, input_lengths, target_lengths, blank)
        self.zero_infinity = zero_infinity
        if kernels.compiled("ctc_loss_forward", log_probs) is not None:
            self.nll, self.saved = _ctc_forward_c(*self.inputs)
        else:
            self.nll, self.saved = ctc_forward_xp(*self.inputs)
        return xp.where(zero_infinity & xp.isinf(self.nll), 0, self.nll).astype(log_probs.dtype)

    def backward(self, grad):
        if kernels.compiled("ctc_loss_backward", grad) is not None:
            return _ctc_backward_c(grad, *self.inputs, self.nll, self.saved, self.zero_infinity)
        return ctc_backward_xp(grad, *self.inputs, self.nll, self.saved, self.zero_infinity)


def _ctc_forward_c(log_probs, targets, input_lengths, target_lengths, blank):
    T, N, C_ = log_probs.shape
    S = targets.shape[1]
    nll = np.empty(N, dtype=log_probs.dtype)
    log_alpha = np.empty((N, T, 2 * S + 1))
    C.ctc_loss_forward(np.ascontiguousarray(log_probs), np.ascontiguousarray(targets), input_lengths, target_lengths,
                       nll, log_alpha, T, N, C_, S, blank)
    return nll, log_alpha


def _ctc_backward_c(grad, log_probs, targets, input_lengths, target_lengths, blank, nll, log_alpha, zero_infinity):
    T, N, C_ = log_probs.shape
    grad_log_probs = np.empty(log_probs.shape, dtype=log_probs.dtype)
    C.ctc_loss_backward(np.ascontiguousarray(grad, dtype=log_probs.dtype), np.ascontiguousarray(log_probs),
                        np.ascontiguousarray(targets), input_lengths, target_lengths, nll, log_alpha, grad_log_probs,
                        T, N, C_, targets.shape[1], blank, zero_infinity)
    return grad_log_probs


def _extended_labels(xp, targets, target_lengths, blank):
    """(labels (N, 2S + 1) with blanks around and between the targets, which of them belong to
    each sample, the log of "position s may be reached from s - 2": 0 or -inf)."""
    N, S = targets.shape[0], 2 * targets.shape[1] + 1
    s = xp.arange(S)
    labels = xp.full((N, S), blank, dtype=np.int64)
    labels[:, 1::2] = targets
    valid = s[None, :] < (2 * target_lengths + 1)[:, None]
    labels = xp.where(valid, labels, blank)
    skip = (s >= 2) & (labels != blank)
    skip[:, 2:] &= labels[:, 2:] != labels[:, :-2]
    return labels, valid, xp.where(skip, 0.0, -np.inf)


def ctc_forward_xp(log_probs, targets, input_lengths, target_lengths, blank):
    """The array version of the CTC forward: (nll (N,), what ctc_backward_xp needs)."""
    xp = get_array_module(log_probs)
    T, N, C_ = log_probs.shape
    labels, valid, skip_penalty = _extended_labels(xp, targets, target_lengths, blank)
    skip_penalty = skip_penalty.astype(log_probs.dtype)
    lp = log_probs[:, xp.arange(N)[:, None], labels]  # (T, N, S): log p of each extended label
    floor = xp.finfo(log_probs.dtype).min
    # alpha[t, :, 2 + s]: two leading -inf columns stand for the positions s - 1, s - 2 before the start.
    # Positions past a sample's 2 * target_length are filled too; they never flow back into the valid ones.
    alpha = xp.full((T, N, labels.shape[1] + 2), -np.inf, dtype=log_probs.dtype)
    alpha[0, :, 2:4] = lp[0, :, :2]
    with np.errstate(divide="ignore"):
        for t in range(1, T):
            a = alpha[t - 1]
            alpha[t, :, 2:] = _logsumexp3(a[:, 2:], a[:, 1:-1], a[:, :-2] + skip_penalty, floor) + lp[t]
    rows, last = xp.arange(N), xp.maximum(input_lengths - 1, 0)
    end = alpha[last, rows, 2 + 2 * target_lengths]
    before_end = alpha[last, rows, 1 + 2 * target_lengths]  # the -inf column 1 when the target is empty
    nll = -xp.logaddexp(end, before_end)
    nll = xp.where(input_lengths > 0, nll, xp.where(target_lengths > 0, np.inf, 0.0)).astype(log_probs.dtype)
    return nll, (labels, valid, skip_penalty, lp, alpha)


def ctc_backward_xp(grad, log_probs, targets, input_lengths, target_lengths, blank, nll, saved, zero_infinity):
    """The array version of the CTC backward: the gradient of log_probs from grad (N,)."""
    xp = get_array_module(grad)
    labels, valid, skip_penalty, lp, alpha = saved
    T, N, C_ = log_probs.shape
    S = labels.shape[1]
    floor = xp.finfo(log_probs.dtype).min
    ends = valid & (xp.arange(S)[None, :] >= 2 * target_lengths[:, None] - 1)
    skip_from = xp.full((N, S), -np.inf, dtype=log_probs.dtype)  # may position s + 2 skip back to s
    skip_from[:, :-2] = skip_penalty[:, 2:]
    # beta[t, :, s]: two trailing -inf columns stand for the positions s + 1, s + 2 past the end.
    beta = xp.full((T, N, S + 2), -np.inf, dtype=log_probs.dtype)
    lengths = input_lengths[:, None]
    beta[T - 1, :, :-2] = xp.where((lengths == T) & ends, lp[T - 1], -np.inf)
    with np.errstate(divide="ignore"):
        for t in range(T - 2, -1, -1):
            b = beta[t + 1]
            beta[t, :, :-2] = _logsumexp3(b[:, :-2], b[:, 1:-1], b[:, 2:] + skip_from, floor) + lp[t]
            beta[t, :, :-2] = xp.where(t == lengths - 1, xp.where(ends, lp[t], -np.inf), beta[t, :, :-2])
    ab = alpha[:, :, 2:] + beta[:, :, :-2]  # log(alpha beta), which counts exp(log_probs) twice
    ab = xp.where(xp.arange(T)[:, None, None] < lengths[None], ab, -np.inf)
    m = xp.maximum(ab.max(axis=2, keepdims=True), floor)
    onehot = (labels[:, :, None] == xp.arange(C_)[None, None, :]).astype(log_probs.dtype)  # (N, S, C)
    per_class = xp.matmul(xp.exp(ab - m).transpose(1, 0, 2), onehot).transpose(1, 0, 2)  # (T, N, C)
    with np.errstate(over="ignore", invalid="ignore"):
        grad_lp = xp.exp(log_probs) - per_class * xp.exp(m + nll[None, :, None] - log_probs)
    keep = ~(zero_infinity & xp.isinf(nll))
    used = (xp.arange(T)[:, None] < input_lengths[None, :]) & keep[None, :]  # (T, N)
    return xp.where(used[:, :, None], grad_lp * grad[None, :, None], 0).astype(log_probs.dtype)
