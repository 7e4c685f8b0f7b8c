"""L-BFGS with an optional strong-Wolfe line search (torch.optim.LBFGS).

All parameters are handled as one flat vector (complex ones as their real and imaginary parts),
built with the data's array module; the direction comes from the two-loop recursion over the
last `history_size` curvature pairs (Nocedal & Wright, Numerical Optimization, algorithm 7.4).
"""
from distml._backend import get_array_module
from distml.autograd.grad_mode import enable_grad
from distml.optim.optimizer import Optimizer
from distml.tensor import Tensor


class LBFGS(Optimizer):
    """L-BFGS: `optimizer = LBFGS(model.parameters(), lr=1, line_search_fn="strong_wolfe")`, then
    `loss = optimizer.step(closure)` where `closure()` zeroes the gradients, computes the loss,
    calls `loss.backward()` and returns the loss. One step runs up to `max_iter` iterations.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    def _params(self):
        return self.param_groups[0]["params"]

    def _gather_flat_grad(self):
        """A new flat vector of every parameter's gradient (zeros where there is none)."""
        parts = []
        for p in self._params():
            xp = get_array_module(p.array)
            grad = xp.zeros(p.array.size, p.array.dtype) if p.grad is None else p.grad.array.ravel()
            parts.append(_real_view(grad))
        return xp.concatenate(parts)

    def _add_grad(self, step_size, update):
        """`p += step_size * update[slice of p]` for every parameter, in place."""
        offset = 0
        for p in self._params():
            real = p.array.real.dtype
            numel = p.array.size * (2 if p.array.dtype.kind == "c" else 1)
            change = (step_size * update[offset:offset + numel]).astype(real, copy=False)
            p.array += change.view(p.array.dtype).reshape(p.array.shape)
            p._version[0] += 1
            offset += numel

    def _set_params(self, arrays):
        for p, array in zip(self._params(), arrays):
            p.array[...] = array
            p._version[0] += 1

    def _directional_evaluate(self, closure, x, t, d):
        """Loss and flat gradient at `x + t * d`; the parameters are left at `x`."""
        self._add_grad(t, d)
        loss = _loss_value(_call(closure))
        flat_grad = self._gather_flat_grad()
        self._set_params(x)
        return loss, flat_grad

    def step(self, closure):
        """Run up to `max_iter` L-BFGS iterations; returns the loss `closure()` gave at the start."""
        group = self.param_groups[0]
        lr = group["lr"].item() if isinstance(group["lr"], Tensor) else group["lr"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        # The state is global; it lives under the first parameter, as in PyTorch.
        state = self.state[self._params()[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = _call(closure)
        loss = _loss_value(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        xp = get_array_module(flat_grad)
        if abs(flat_grad).max() <= tolerance_grad:
            return orig_loss

        d, t, H_diag, prev_flat_grad, prev_loss = (_unpack(state.get(k)) for k in
                                                   ("d", "t", "H_diag", "prev_flat_grad", "prev_loss"))
        old_dirs, old_stps, ro = ([_unpack(v) for v in state.get(k, [])] for k in ("old_dirs", "old_stps", "ro"))

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the direction: steepest descent at first, then the two-loop recursion
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only where the curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # scale of the initial inverse Hessian
                al = [_unpack(v) for v in state.setdefault("al", [None] * history_size)]
                d = _two_loop(-flat_grad, old_dirs, old_stps, ro, H_diag, al)
                state["al"] = [_pack(v) for v in al]  # kept in the state as PyTorch's (its two-loop scratch)
            prev_flat_grad = flat_grad  # never changed in place: each gather makes a new vector
            prev_loss = loss

            # the step length: at first scaled down by the gradient's size
            t = min(1.0, 1.0 / abs(flat_grad).sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = [p.array.copy() for p in self._params()]

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd, xp,
                                                                  max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:  # the last iteration's new point is left unevaluated, as in PyTorch
                    loss = _loss_value(_call(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=_pack(d), t=_pack(t), old_dirs=[_pack(v) for v in old_dirs],
                     old_stps=[_pack(v) for v in old_stps], ro=[_pack(v) for v in ro], H_diag=_pack(H_diag),
                     prev_flat_grad=_pack(prev_flat_grad), prev_loss=prev_loss)
        return orig_loss


def _two_loop(q, old_dirs, old_stps, ro, H_diag, al):
    """The L-BFGS inverse-Hessian approximation times `q` (updated in place and returned scaled);
    `al` (history_size long) receives the first loop's coefficients."""
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = old_stps[i].dot(q) * ro[i]
        q -= al[i] * old_dirs[i]
    r = q * H_diag
    for i in range(len(old_dirs)):
        be_i = old_dirs[i].dot(r) * ro[i]
        r += (al[i] - be_i) * old_stps[i]
    return r


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, xp, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clipped to
    `bounds` (default: between x1 and x2); their midpoint when the cubic has no minimum."""
    xmin_bound, xmax_bound = bounds if bounds is not None else (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (xmin_bound + xmax_bound) / 2.0
    d2 = xp.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, xmin_bound), xmax_bound)


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, xp, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step length along `d` from `x` meeting the strong Wolfe conditions (Nocedal & Wright,
    algorithms 3.5 and 3.6): bracket, then zoom by cubic interpolation.

    Returns (loss, flat gradient, step, function evaluations); the parameters are left at `x`.
    """
    d_norm = abs(d).max()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)

    # bracketing phase: grow the step until an interval holds a point meeting the conditions
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        t_prev, t = t, _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, xp,
                                          bounds=(min_step, max_step))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter >= max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom phase: shrink the bracket until its low end meets the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1],
                               xp)
        # A trial point near an end of the bracket twice running (or outside it) moves to
        # 10% of the bracket's length inside it.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # not a sufficient decrease, or not below the low end: the new high end
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos], bracket_gtd[high_pos] = \
                t, f_new, g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # the old low end becomes the high end
                bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos], bracket_gtd[high_pos] = \
                    bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos], bracket_gtd[low_pos] = \
                t, f_new, g_new, gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def _call(closure):
    with enable_grad():
        return closure()


def _loss_value(loss):
    """The closure's loss as a Python float (a Tensor that requires grad, without the warning)."""
    return float(loss.detach() if isinstance(loss, Tensor) else loss)


def _real_view(array):
    """A contiguous 1-D array as real numbers (a complex one as interleaved real and imaginary parts)."""
    return array.view(array.real.dtype) if array.dtype.kind == "c" else array


def _pack(value):
    """A state value as PyTorch keeps it: arrays and array scalars as Tensors, Python numbers as they are."""
    if hasattr(value, "dtype"):
        return Tensor(get_array_module(value).asarray(value))
    return value


def _unpack(value):
    return value.array if isinstance(value, Tensor) else value
