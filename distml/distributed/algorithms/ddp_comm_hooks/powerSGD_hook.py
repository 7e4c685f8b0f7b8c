"""PowerSGD gradient compression (Vogels et al., NeurIPS 2019), PyTorch's powerSGD_hook.

    state = PowerSGDState(process_group=None, matrix_approximation_rank=1, start_powerSGD_iter=10)
    model.register_comm_hook(state, powerSGD_hook)

Each gradient matrix M (n x m, a parameter viewed as shape[0] rows) is approximated by P Q^T of
rank r: P = M Q is allreduced and orthogonalised, Q = M^T P is allreduced, and M becomes
P Q^T / world_size; only (n + m) r numbers cross the wire instead of n m. Tensors too small to
gain `min_compression_rate` (and vectors) are allreduced as they are. The local error M - P Q^T
is added back in the next iteration (`use_error_feedback`), and the last Q starts the next
power iteration (`warm_start`). Until `start_powerSGD_iter`, buckets are plainly averaged.
"""
import logging
import math
from collections import defaultdict

import numpy as np

from distml import distributed as dist
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks as default
from distml.random import Generator, randn
from distml.tensor import Tensor

__all__ = ["PowerSGDState", "powerSGD_hook", "batched_powerSGD_hook"]

logger = logging.getLogger(__name__)


def _orthogonalize(matrices, epsilon=0):
    """Orthonormalise the columns of each matrix of a (batch, n, r) array in place, r <= n:
    Gram-Schmidt for r <= 2 or half precision, QR otherwise (as PyTorch)."""
    if not (matrices.ndim == 3 and matrices.shape[2] <= matrices.shape[1]):
        raise AssertionError(f"expected (batch, n, r) with r <= n, got {matrices.shape}")
    if matrices.shape[2] <= 2 or matrices.dtype == np.float16:
        _orthogonalize_gram_schmidt(matrices, epsilon)
    else:
        matrices[...] = np.linalg.qr(matrices)[0]


def _orthogonalize_gram_schmidt(matrices, epsilon=0):
    for i in range(matrices.shape[2]):
        col = matrices[:, :, i:i + 1]
        col /= np.sqrt(np.sum(col * col, axis=1, keepdims=True)) + epsilon
        if i + 1 < matrices.shape[2]:
            rest = matrices[:, :, i + 1:]
            rest -= np.sum(col * rest, axis=1, keepdims=True) * col


def _should_compress(num_rows, num_cols, matrix_approximation_rank, min_compression_rate):
    """(whether compressing pays, elements before, elements after)."""
    uncompressed_size = num_rows * num_cols
    compressed_size = (num_rows + num_cols) * matrix_approximation_rank
    return compressed_size * min_compression_rate < uncompressed_size, uncompressed_size, compressed_size


def _report_compression_stats(bucket, state):
    if bucket.is_last() and state.iter >= state.next_stats_report:
        stats = state.compression_stats()
        logger.info("Compression stats: iter %s, total before compression %s, total after compression %s, "
                    "rate %s", state.iter, stats[1], stats[2], stats[0])
        state.next_stats_report = state.iter + state.compression_stats_logging_frequency


def _random_like(shape, dtype, seed):
    """Standard normal values from a generator seeded with `seed` (the global stream is left alone)."""
    return randn(*shape, generator=Generator().manual_seed(seed), dtype=dtype).array


class PowerSGDState:
    """The hyperparameters and per-bucket memory (errors, P and Q) of the PowerSGD hooks.

        state = PowerSGDState(process_group=None, matrix_approximation_rank=2, start_powerSGD_iter=100)

    With `use_error_feedback` or `warm_start`, start_powerSGD_iter must be > 1.
    """

    __slots__ = ["process_group", "matrix_approximation_rank", "start_powerSGD_iter", "min_compression_rate",
                 "orthogonalization_epsilon", "use_error_feedback", "warm_start", "batch_tensors_with_same_shape",
                 "rng", "error_dict", "p_memory_dict", "q_memory_dict", "iter", "total_numel_before_compression",
                 "total_numel_after_compression", "compression_stats_logging_frequency", "next_stats_report"]

    def __init__(self, process_group, matrix_approximation_rank=1, start_powerSGD_iter=1_000, min_compression_rate=2,
                 use_error_feedback=True, warm_start=True, orthogonalization_epsilon=0, random_seed=0,
                 compression_stats_logging_frequency=10_000, batch_tensors_with_same_shape=False):
        logger.info("PowerSGD config: matrix_approximation_rank = %s; start_powerSGD_iter = %s; "
                    "min_compression_rate = %s; orthogonalization_epsilon = %s; use_error_feedback = %s; "
                    "warm_start = %s; random_seed = %s; compression_stats_logging_frequency = %s; "
                    "batch_tensors_with_same_shape = %s", matrix_approximation_rank, start_powerSGD_iter,
                    min_compression_rate, orthogonalization_epsilon, use_error_feedback, warm_start, random_seed,
                    compression_stats_logging_frequency, batch_tensors_with_same_shape)
        self.process_group = process_group
        self.matrix_approximation_rank = matrix_approximation_rank
        if (use_error_feedback or warm_start) and start_powerSGD_iter <= 1:
            raise ValueError("Expect `start_powerSGD_iter` > 1 if `use_error_feedback` or `warm_start` is enabled, "
                             "because PowerSGD can only be applied after the first two iterations in DDP.")
        self.start_powerSGD_iter = start_powerSGD_iter
        self.min_compression_rate = min_compression_rate
        self.use_error_feedback = use_error_feedback
        self.warm_start = warm_start
        self.orthogonalization_epsilon = orthogonalization_epsilon
        self.rng = np.random.RandomState(random_seed)  # seeds each new set of random Qs, as PyTorch
        self.error_dict = {}
        self.p_memory_dict = {}
        self.q_memory_dict = {}
        self.iter = 0
        self.total_numel_before_compression = 0
        self.total_numel_after_compression = 0
        self.compression_stats_logging_frequency = max(1, compression_stats_logging_frequency)
        self.next_stats_report = 0
        self.batch_tensors_with_same_shape = batch_tensors_with_same_shape

    def __getstate__(self):
        logger.warning("NOTE: Process group is not serializable and excluded from a saved state.")
        return {slot: getattr(self, slot) for slot in self.__slots__ if slot != "process_group"}

    def __setstate__(self, state):
        self.process_group = None  # the default group
        logger.warning("NOTE: Process group will be set to a default group (i.e. the world size). If a different "
                       "group is desired, please set `self.process_group` after PowerSGD state is loaded.")
        for slot, value in state.items():
            setattr(self, slot, value)

    def maybe_increase_iter(self, bucket):
        """Count an iteration when its last bucket is reduced."""
        if bucket.is_last():
            self.iter += 1
        if self.iter == self.start_powerSGD_iter:
            logger.info("Start to apply PowerSGD after %s iterations.", self.iter)

    def compression_stats(self):
        """(compression rate, elements before compression, elements after) so far."""
        before, after = self.total_numel_before_compression, self.total_numel_after_compression
        return (before / after if after > 0 else 0), before, after


def powerSGD_hook(state, bucket):
    """Compress each gradient matrix of the bucket to rank `matrix_approximation_rank`.

        model.register_comm_hook(PowerSGDState(None, start_powerSGD_iter=10), powerSGD_hook)

    Three allreduces per bucket: the uncompressed tensors, then all Ps, then all Qs.
    """
    group = state.process_group
    world_size = dist.get_world_size(group)
    input_tensor = bucket.buffer()
    if state.iter < state.start_powerSGD_iter:
        state.maybe_increase_iter(bucket)
        return default._allreduce_fut(group, input_tensor)

    flat = input_tensor.array
    dtype = flat.dtype
    bucket_index = bucket.index()
    input_copy = None
    if state.use_error_feedback:
        if bucket_index in state.error_dict:
            flat += state.error_dict[bucket_index].array
        else:
            logger.info("A zero tensor of length %s that represents local error is created.", flat.size)
            state.error_dict[bucket_index] = Tensor(np.zeros(flat.size, dtype))
        input_copy = flat.copy()

    tensors = [g.array for g in bucket.gradients()]
    to_compress, uncompressed = [], []
    total_ps_size = total_qs_size = 0
    for tensor in tensors:
        matrix = tensor.reshape(tensor.shape[0], -1)
        n, m = matrix.shape
        rank = min(n, m, state.matrix_approximation_rank)
        compress, before, after = _should_compress(n, m, rank, state.min_compression_rate)
        state.total_numel_before_compression += before
        if compress:
            to_compress.append(matrix)
            total_ps_size += n * rank
            total_qs_size += m * rank
            state.total_numel_after_compression += after
        else:
            uncompressed.append(tensor)
            state.total_numel_after_compression += before
    _report_compression_stats(bucket, state)

    uncompressed_memory = (np.concatenate([t.reshape(-1) for t in uncompressed]) if uncompressed
                           else np.zeros(0, dtype))

    need_randomize_qs = not state.warm_start or bucket_index not in state.p_memory_dict
    if need_randomize_qs:
        if state.warm_start:
            logger.info("Allocating contiguous memory of length %s for Ps, and of length %s for Qs, respectively.",
                        total_ps_size, total_qs_size)
        state.p_memory_dict[bucket_index] = Tensor(np.empty(total_ps_size, dtype))
        state.q_memory_dict[bucket_index] = Tensor(np.empty(total_qs_size, dtype))

    # Matrices of one shape are stacked into one batch when batch_tensors_with_same_shape.
    shape_to_tensors = defaultdict(list)
    for matrix in to_compress:
        shape_to_tensors[matrix.shape].append(matrix)
    batches = []
    for same in shape_to_tensors.values():
        if state.batch_tensors_with_same_shape:
            batches.append(same[0][None] if len(same) == 1 else np.stack(same))
        else:
            batches.extend(matrix[None] for matrix in same)

    p_memory = state.p_memory_dict[bucket_index].array
    q_memory = state.q_memory_dict[bucket_index].array
    ps, qs = [], []
    p_idx = q_idx = 0
    for batch in batches:
        batch_size, n, m = batch.shape
        rank = min(n, m, state.matrix_approximation_rank)
        ps.append(p_memory[p_idx:p_idx + batch_size * n * rank].reshape(batch_size, n, rank))
        qs.append(q_memory[q_idx:q_idx + batch_size * m * rank].reshape(batch_size, m, rank))
        p_idx += batch_size * n * rank
        q_idx += batch_size * m * rank

    if need_randomize_qs:
        generator = Generator().manual_seed(state.rng.randint(1_000_000_000))
        for q in qs:
            q[...] = randn(*q.shape, generator=generator, dtype=input_tensor.dtype).array
            _orthogonalize(q, state.orthogonalization_epsilon)
    else:
        for q in qs:
            _orthogonalize(q, state.orthogonalization_epsilon)

    for batch, q, p in zip(batches, qs, ps):
        np.matmul(batch, q, out=p)

    uncompressed_fut = dist.all_reduce(Tensor(uncompressed_memory), group=group, async_op=True).get_future()

    def unpack_uncompressed_tensors_and_allreduce_ps(fut):
        memory = fut.value()[0].array
        memory /= world_size
        idx = 0
        for tensor in uncompressed:
            tensor[...] = memory[idx:idx + tensor.size].reshape(tensor.shape)
            idx += tensor.size
        return dist.all_reduce(state.p_memory_dict[bucket_index], group=group, async_op=True).get_future().wait()[0]

    def compute_qs(fut):
        for p in ps:
            _orthogonalize(p, state.orthogonalization_epsilon)
        for batch, p, q in zip(batches, ps, qs):
            np.matmul(batch.transpose(0, 2, 1), p, out=q)
        return dist.all_reduce(state.q_memory_dict[bucket_index], group=group, async_op=True).get_future().wait()[0]

    def decompress(fut):
        np.divide(q_memory, world_size, out=q_memory)
        for p, q, batch in zip(ps, qs, batches):
            np.matmul(p, q.transpose(0, 2, 1), out=batch)
        if state.batch_tensors_with_same_shape:
            for batch in batches:
                if batch.shape[0] > 1:  # a stacked copy: write each matrix back
                    for i, original in enumerate(shape_to_tensors[batch.shape[1:]]):
                        original[...] = batch[i]
        if state.use_error_feedback:
            state.error_dict[bucket_index] = Tensor(input_copy - flat)
        if not state.warm_start:
            state.p_memory_dict.clear()
            state.q_memory_dict.clear()
        state.maybe_increase_iter(bucket)
        return input_tensor

    return uncompressed_fut.then(unpack_uncompressed_tensors_and_allreduce_ps).then(compute_qs).then(decompress)


def batched_powerSGD_hook(state, bucket):
    """Compress the whole bucket as one square matrix (zero-padded) of rank
    `matrix_approximation_rank`: two allreduces per bucket, a higher rank needed for accuracy.

        model.register_comm_hook(PowerSGDState(None, matrix_approximation_rank=8), batched_powerSGD_hook)
    """
    group = state.process_group
    world_size = dist.get_world_size(group)
    input_tensor = bucket.buffer()
    if state.iter < state.start_powerSGD_iter:
        state.maybe_increase_iter(bucket)
        return default._allreduce_fut(group, input_tensor)

    flat = input_tensor.array
    dtype = flat.dtype
    total_length = flat.size
    state.total_numel_before_compression += total_length
    side = math.ceil(math.sqrt(total_length))
    state.total_numel_after_compression += side * state.matrix_approximation_rank * 2
    padded = np.zeros(side * side, dtype)
    padded[:total_length] = flat
    _report_compression_stats(bucket, state)

    bucket_index = bucket.index()
    input_copy = None
    if state.use_error_feedback:
        if bucket_index in state.error_dict:
            padded += state.error_dict[bucket_index].array
        else:
            logger.info("A zero tensor of length %s that represents local error is created.", side * side)
            state.error_dict[bucket_index] = Tensor(np.zeros(side * side, dtype))
        input_copy = padded.copy()
    matrix = padded.reshape(side, side)

    if not state.warm_start or bucket_index not in state.p_memory_dict:
        if state.warm_start:
            logger.info("Initializing low-rank tensors P and Q, each of which has a shape of %s x %s.",
                        side, state.matrix_approximation_rank)
        state.p_memory_dict[bucket_index] = Tensor(np.empty((side, state.matrix_approximation_rank), dtype))
        state.q_memory_dict[bucket_index] = Tensor(_random_like((side, state.matrix_approximation_rank),
                                                                input_tensor.dtype, state.rng.randint(1_000_000_000)))
    p = state.p_memory_dict[bucket_index].array
    q = state.q_memory_dict[bucket_index].array
    _orthogonalize(q[None])  # PyTorch's batched hook does not pass orthogonalization_epsilon
    np.matmul(matrix, q, out=p)
    allreduce_p_fut = dist.all_reduce(state.p_memory_dict[bucket_index], group=group, async_op=True).get_future()

    def compute_q(fut):
        _orthogonalize(p[None])
        np.matmul(matrix.T, p, out=q)
        return dist.all_reduce(state.q_memory_dict[bucket_index], group=group, async_op=True).get_future().wait()[0]

    def decompress(fut):
        np.divide(q, world_size, out=q)
        np.matmul(p, q.T, out=matrix)
        if state.use_error_feedback:
            state.error_dict[bucket_index] = Tensor(input_copy - padded)
        if not state.warm_start:
            state.p_memory_dict.clear()
            state.q_memory_dict.clear()
        state.maybe_increase_iter(bucket)
        return Tensor(padded[:total_length])

    return allreduce_p_fut.then(compute_q).then(decompress)
