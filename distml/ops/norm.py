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
