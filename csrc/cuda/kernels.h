// The CUDA twins of kernels/: the same signatures on device pointers, plus the stream to launch on
// (the one the arrays' __cuda_array_interface__ names). Compiled only when setup.py finds nvcc
// (DISTML_WITH_CUDA); bindings.cpp calls them for Buffers on a CUDA device. Errors (a bad launch, no
// driver) throw std::runtime_error naming the kernel and CUDA's message.
#pragma once
#include <cstdint>

#include "dtype.h"
#include "kernels/optim.h"

struct CUstream_st;

namespace distml::cuda {

using Stream = CUstream_st*;

// The bindings that run these kernels for CUDA buffers (build_info()["cuda_kernels"]).
inline constexpr const char* kKernelNames[] = {"softmax_forward", "softmax_backward", "sgd_step", "adam_step"};

// CUDART_VERSION of the toolkit _C was compiled with (e.g. 13000).
int compiled_runtime_version();

void softmax_forward(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, bool log, DType dtype,
                     Stream stream);
void softmax_backward(const void* grad, const void* y, void* grad_x, int64_t outer, int64_t n, int64_t inner,
                      bool log, DType dtype, Stream stream);

// Multi-tensor steps: one launch per kMaxTensors tensors of a group.
void sgd_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
              void* const* momentum_buffers, const uint8_t* fresh, DType dtype, const SgdOptions& options,
              Stream stream);
void adam_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
               void* const* exp_avgs, void* const* exp_avg_sqs, void* const* max_exp_avg_sqs, const double* steps,
               DType dtype, const AdamOptions& options, Stream stream);

}  // namespace distml::cuda
