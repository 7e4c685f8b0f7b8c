"""Batch normalisation, with torch.nn.modules.batchnorm's names: BatchNorm1d, BatchNorm2d, BatchNorm3d and
their base _NormBase (the affine parameters and running statistics InstanceNorm shares), and SyncBatchNorm
(statistics over the processes of a distributed job)."""
from distml import dtypes
from distml._backend import get_array_module
from distml.autograd.grad_mode import no_grad
from distml.creation import empty, ones, tensor, zeros
from distml.nn import functional as F
from distml.nn import init
from distml.nn.module import Module
from distml.nn.parameter import Parameter
from distml.ops.norm import BatchNorm, batch_norm_stats


class _NormBase(Module):
    """What batch and instance normalisation share: per-channel affine parameters and,
    with track_running_stats, the buffers running_mean, running_var and num_batches_tracked."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(empty(num_features, device=device, dtype=dtype))
            if bias:
                self.bias = Parameter(empty(num_features, device=device, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=dtypes.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    _version = 2  # version 2 added num_batches_tracked

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """A state dict of an older layout (version < 2, or none recorded: a plain dict) may lack
        num_batches_tracked; it then keeps its current value instead of being reported missing."""
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked if self.num_batches_tracked is not None else tensor(0)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.array[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """Per-channel normalisation with batch statistics in training and running ones in eval.
    momentum=None makes the running statistics a cumulative average."""

    def _check_input_dim(self, input):
        raise NotImplementedError

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            factor = 1.0 / float(self.num_batches_tracked.array) if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        tracking = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if tracking else None, self.running_var if tracking else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L): `nn.BatchNorm1d(64)`."""

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W): `nn.BatchNorm2d(16)`."""

    def _check_input_dim(self, input):
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over (N, C, D, H, W): `nn.BatchNorm3d(16)`."""

    def _check_input_dim(self, input):
        if input.dim() != 5:
            raise ValueError(f"expected 5D input (got {input.dim()}D input)")


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics are those of the whole batch across the
    processes of `process_group` (all ranks when None): `nn.SyncBatchNorm(64)`, or
    `nn.SyncBatchNorm.convert_sync_batchnorm(model)` to replace every BatchNorm*d of a model.

    Forward gathers each rank's per-channel (mean, sum of squared deviations, count) in one
    all_gather and combines them exactly; backward sums the per-channel sums of the gradient and of
    gradient x normalised input in one all_reduce. Eval mode, a world of size 1 and a job without
    init_process_group normalise as BatchNorm does, with no communication. Unlike PyTorch, whose
    SyncBatchNorm raises ValueError for CPU tensors in a distributed job, this runs on the CPU.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.array[...] += 1
            factor = 1.0 / float(self.num_batches_tracked.array) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        tracking = not self.training or self.track_running_stats
        running_mean = self.running_mean if tracking else None
        running_var = self.running_var if tracking else None
        world_size = 1
        if use_batch_stats and self.training:
            # distml.nn does not depend on distml.distributed: it is imported here, when needed.
            from distml import distributed as dist
            if dist.is_initialized():
                world_size = dist.get_world_size(self.process_group)
        if world_size <= 1:
            return F.batch_norm(input, running_mean, running_var, self.weight, self.bias, use_batch_stats, factor,
                                self.eps)
        return _sync_batch_norm(input, running_mean, running_var, self.weight, self.bias, factor, self.eps,
                                self.process_group, world_size)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """`module` with every BatchNorm*d (at any depth) replaced by a SyncBatchNorm that shares
        its parameters and buffers: `model = nn.SyncBatchNorm.convert_sync_batchnorm(model)`."""
        converted = module
        if isinstance(module, _BatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group, bias=module.bias is not None)
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
            if hasattr(module, "qconfig"):
                converted.qconfig = module.qconfig
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


def _sync_batch_norm(input, running_mean, running_var, weight, bias, momentum, eps, group, world_size):
    """Training-mode batch norm with the statistics of every rank's batch of `group`."""
    from distml import distributed as dist  # see SyncBatchNorm.forward
    x = input.array
    xp = get_array_module(x)
    channels = x.shape[1]
    local = xp.zeros(2 * channels + 1, dtype=x.dtype)  # this rank's mean, squared deviations, count
    count = x.size // channels
    if count > 0:
        mean, var = batch_norm_stats(x)
        local[:channels], local[channels:2 * channels], local[-1] = mean, var * count, count
    gathered = xp.empty(world_size * local.size, dtype=x.dtype)
    dist.all_gather_into_tensor(gathered, local, group=group)
    gathered = gathered.reshape(world_size, -1)
    means, squares, counts = gathered[:, :channels], gathered[:, channels:2 * channels], gathered[:, -1:]
    total = counts.sum()
    if total <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {int(total)}")
    mean = (counts * means).sum(axis=0) / total
    var = (squares.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)) / total
    if running_mean is not None:
        with no_grad():
            running_mean.array[...] = (1 - momentum) * running_mean.array + momentum * mean
            running_mean._version[0] += 1
    if running_var is not None:
        with no_grad():
            running_var.array[...] = (1 - momentum) * running_var.array + momentum * var * (total / (total - 1))
            running_var._version[0] += 1

    def reduce_sums(sum_dy, sum_dy_xmu):
        sums = xp.concatenate([sum_dy, sum_dy_xmu])
        dist.all_reduce(sums, group=group)
        return sums[:channels], sums[channels:]

    invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    return BatchNorm.apply(input, weight, bias, mean=mean.astype(x.dtype, copy=False), invstd=invstd,
                           training=True, count=int(total), reduce_sums=reduce_sums)
