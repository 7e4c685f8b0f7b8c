"""SparseAdam: Adam on the rows a sparse gradient touches (torch.optim.SparseAdam)."""
from distml._backend import get_array_module
from distml.optim.optimizer import Optimizer, _zeros_like


class SparseAdam(Optimizer):
    """Adam for sparse gradients (a `distml.sparse_coo_tensor` in `p.grad`): only the moments and
    parameter entries the gradient holds are updated, e.g. the rows of an embedding a batch used.
    `SparseAdam(model.parameters(), lr=1e-3)`; a dense gradient raises, as in PyTorch.
    """

    _tensor_step = False  # "step" is a Python int here, as in PyTorch

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        where = [([i, j], p) for i, group in enumerate(self.param_groups) for j, p in enumerate(group["params"])]
        sparse = [index for index, p in where if p.is_sparse]
        if sparse:
            raise ValueError(f"Sparse params at indices {sparse}: SparseAdam requires dense parameter tensors")
        complex_ = [index for index, p in where if p.is_complex()]
        if complex_:
            raise ValueError(f"Complex params at indices {complex_}: SparseAdam does not support complex parameters")

    def _check_group(self, group, params):
        if not all(p.grad.is_sparse for p in params):
            raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")

    def _update_group(self, group, params):
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = _zeros_like(p)
                state["exp_avg_sq"] = _zeros_like(p)
            state["step"] += 1
            grad = p.grad.coalesce()  # the update is not linear: each index once
            values = grad._values().array
            if values.size == 0:
                continue
            sparse_adam_xp(p.array, tuple(grad._indices().array), -values if group["maximize"] else values,
                           state["exp_avg"].array, state["exp_avg_sq"].array, state["step"], group["lr"], beta1,
                           beta2, group["eps"])
            p._version[0] += 1


def sparse_adam_xp(param, index, values, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps):
    """One SparseAdam step on numpy or cupy arrays, in place, at `param[index]` (gradient `values`)."""
    xp = get_array_module(param)
    old_avg, old_sq = exp_avg[index], exp_avg_sq[index]
    avg = old_avg + (values - old_avg) * (1 - beta1)
    sq = old_sq + (values * values - old_sq) * (1 - beta2)
    exp_avg[index], exp_avg_sq[index] = avg, sq
    step_size = lr * (1 - beta2 ** step) ** 0.5 / (1 - beta1 ** step)
    param[index] += -step_size * (avg / (xp.sqrt(sq) + eps))
