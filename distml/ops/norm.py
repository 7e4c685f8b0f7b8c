"""Normalisation to zero mean and unit variance over some axes: the one primitive behind
batch_norm, layer_norm and group_norm (their affine parts are ordinary ops)."""
from distml._backend import get_array_module
from distml.autograd.function import Primitive


class Normalize(Primitive):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance); `mean` / `var` may be
    passed in when the caller already computed them (batch_norm's running statistics)."""
    saves_inputs = False
    saves_output = True

    def forward(self, x, axes, eps, mean=None, var=None):
        xp = get_array_module(x)
        if mean is None:
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
        self.axes = axes
        self.rstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        self.out = (x - mean) * self.rstd
        return self.out

    def backward(self, grad):
        axes, out = self.axes, self.out
        return self.rstd * (grad - grad.mean(axis=axes, keepdims=True)
                            - out * (grad * out).mean(axis=axes, keepdims=True))


class SyncNormalize(Normalize):
    """Normalize with statistics over several processes (SyncBatchNorm's primitive): `mean` and `var`
    are the statistics of every process's elements, `count` their number per channel, and
    backward's two per-channel means are taken over all of them: `allreduce(array)` sums an
    array over the processes in place (the caller's collective; ops know nothing of distributed)."""

    def forward(self, x, axes, eps, mean, var, count, allreduce):
        self.count, self.allreduce = count, allreduce
        return super().forward(x, axes, eps, mean, var)

    def backward(self, grad):
        xp = get_array_module(grad)
        axes, out, shape = self.axes, self.out, self.rstd.shape
        channels = self.rstd.size
        sums = xp.concatenate([grad.sum(axis=axes).reshape(-1), (grad * out).sum(axis=axes).reshape(-1)])
        self.allreduce(sums)
        mean_grad = (sums[:channels] / self.count).reshape(shape)
        mean_grad_out = (sums[channels:] / self.count).reshape(shape)
        return self.rstd * (grad - mean_grad - out * mean_grad_out)
