// Fused SGD and Adam/AdamW steps on a CUDA device as multi-tensor kernels: one launch updates up to
// kMaxTensors tensors of a group (their pointers and sizes travel in the kernel's arguments; blockIdx.y
// picks the tensor, the x blocks stride over its elements). The per-element arithmetic is
// kernels/optim_math.h's, which the CPU kernels run too.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/optim_math.h"

namespace distml::cuda {
namespace {

// Kernel arguments stay under 4 KB: Adam in double needs 5 pointers, a size and 2 scalars per tensor.
constexpr int kMaxTensors = 48;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocksPerTensor = 1024;

template <typename T>
struct SgdBatch {
  T* params[kMaxTensors];
  const T* grads[kMaxTensors];
  T* buffers[kMaxTensors];
  int64_t sizes[kMaxTensors];
  bool fresh[kMaxTensors];
};

struct SgdFlags {
  bool maximize, decay, momentum, nesterov;
};

template <typename T>
__global__ void sgd_kernel(SgdBatch<T> batch, optim_math::SgdScalars<T> s, SgdFlags f) {
  const int t = blockIdx.y;
  const bool first = f.momentum && batch.fresh[t];
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < batch.sizes[t];
       j += gridDim.x * int64_t{blockDim.x})
    optim_math::sgd_element(batch.params[t], batch.grads[t], batch.buffers[t], j, first, s, f.maximize, f.decay,
                            f.momentum, f.nesterov);
}

template <typename T>
struct AdamBatch {
  T* params[kMaxTensors];
  const T* grads[kMaxTensors];
  T* exp_avgs[kMaxTensors];
  T* exp_avg_sqs[kMaxTensors];
  T* max_exp_avg_sqs[kMaxTensors];
  int64_t sizes[kMaxTensors];
  optim_math::AdamStepScalars<T> steps[kMaxTensors];
};

struct AdamFlags {
  bool maximize, decay, decoupled, amsgrad, from_start;
};

template <typename T>
__global__ void adam_kernel(AdamBatch<T> batch, optim_math::AdamScalars<T> s, AdamFlags f) {
  const int t = blockIdx.y;
  for (int64_t j = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; j < batch.sizes[t];
       j += gridDim.x * int64_t{blockDim.x})
    optim_math::adam_element(batch.params[t], batch.grads[t], batch.exp_avgs[t], batch.exp_avg_sqs[t],
                             batch.max_exp_avg_sqs[t], j, s, batch.steps[t], f.maximize, f.decay, f.decoupled,
                             f.amsgrad, f.from_start);
}

// Calls fill(slot, t) for the tensors [first, first + n) of each batch and launch(grid) once per batch.
template <typename Fill, typename Launch>
void in_batches(int64_t count, const int64_t* sizes, Fill fill, Launch launch) {
  for (int64_t first = 0; first < count; first += kMaxTensors) {
    const int n = static_cast<int>(std::min<int64_t>(kMaxTensors, count - first));
    int64_t largest = 0;
    for (int i = 0; i < n; ++i) {
      fill(i, first + i);
      largest = std::max(largest, sizes[first + i]);
    }
    if (largest == 0) continue;
    launch(dim3(static_cast<unsigned>(std::min(kMaxBlocksPerTensor, (largest + kThreads - 1) / kThreads)), n));
  }
}

template <typename T>
void sgd_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* bufs,
               const uint8_t* fresh, const SgdOptions& o, Stream stream) {
  SgdBatch<T> batch{};
  const optim_math::SgdScalars<T> scalars(o);
  const SgdFlags flags{o.maximize, o.weight_decay != 0, o.momentum != 0, o.nesterov};
  in_batches(count, sizes, [&](int i, int64_t t) {
    batch.params[i] = static_cast<T*>(params[t]);
    batch.grads[i] = static_cast<const T*>(grads[t]);
    batch.buffers[i] = static_cast<T*>(bufs[t]);
    batch.sizes[i] = sizes[t];
    batch.fresh[i] = flags.momentum && fresh[t];
  }, [&](dim3 grid) { sgd_kernel<T><<<grid, kThreads, 0, stream>>>(batch, scalars, flags); });
}

template <typename T>
void adam_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* avgs,
                void* const* sqs, void* const* max_sqs, const double* steps, const AdamOptions& o, Stream stream) {
  AdamBatch<T> batch{};
  const optim_math::AdamScalars<T> scalars(o);
  const AdamFlags flags{o.maximize, o.weight_decay != 0, o.decoupled_weight_decay, o.amsgrad,
                        scalars.one_minus_beta1 < T(0.5)};
  in_batches(count, sizes, [&](int i, int64_t t) {
    batch.params[i] = static_cast<T*>(params[t]);
    batch.grads[i] = static_cast<const T*>(grads[t]);
    batch.exp_avgs[i] = static_cast<T*>(avgs[t]);
    batch.exp_avg_sqs[i] = static_cast<T*>(sqs[t]);
    batch.max_exp_avg_sqs[i] = static_cast<T*>(max_sqs[t]);
    batch.sizes[i] = sizes[t];
    batch.steps[i] = optim_math::AdamStepScalars<T>(o, steps[t]);
  }, [&](dim3 grid) { adam_kernel<T><<<grid, kThreads, 0, stream>>>(batch, scalars, flags); });
}

}  // namespace

void sgd_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
              void* const* momentum_buffers, const uint8_t* fresh, DType dtype, const SgdOptions& options,
              Stream stream) {
  launch_float("sgd_step", dtype, params[0], [&](auto type) {
    sgd_typed<decltype(type)>(count, sizes, params, grads, momentum_buffers, fresh, options, stream);
  });
}

void adam_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
               void* const* exp_avgs, void* const* exp_avg_sqs, void* const* max_exp_avg_sqs, const double* steps,
               DType dtype, const AdamOptions& options, Stream stream) {
  launch_float("adam_step", dtype, params[0], [&](auto type) {
    adam_typed<decltype(type)>(count, sizes, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, options,
                            stream);
  });
}

}  // namespace distml::cuda
