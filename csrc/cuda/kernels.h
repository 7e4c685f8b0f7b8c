// The CUDA twins of kernels/: the same signatures on device pointers, plus the stream to launch on
// (the one the arrays' __cuda_array_interface__ names). Compiled only when setup.py finds nvcc
// (DISTML_WITH_CUDA); bindings.cpp calls them for Buffers on a CUDA device. Errors (a bad launch, no
// driver) throw std::runtime_error naming the kernel and CUDA's message.
#pragma once
#include <cstdint>

#include "comm/reduce.h"
#include "dtype.h"
#include "kernels/optim.h"
#include "kernels/pool.h"

struct CUstream_st;

namespace distml::cuda {

using Stream = CUstream_st*;

// The bindings that run these kernels for CUDA buffers (build_info()["cuda_kernels"]).
inline constexpr const char* kKernelNames[] = {
    "softmax_forward",  "softmax_backward",  "sgd_step",         "adam_step",        "cross_entropy",
    "scatter_add",      "max_pool",          "max_pool_backward", "avg_pool",        "avg_pool_backward",
    "batch_norm_stats", "batch_norm_elemt",  "batch_norm_backward_reduce", "batch_norm_backward_elemt",
    "reduce_into"};

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

// kernels/cross_entropy.h's kernel, except that a target outside [0, C) other than ignore_index
// writes NaN (the caller checks targets; a kernel cannot raise).
void cross_entropy(const void* logits, const int64_t* target, const void* weight, void* loss, void* target_weight,
                   void* grad, int64_t N, int64_t C, int64_t L, int64_t ignore_index, double label_smoothing,
                   DType dtype, Stream stream);

// kernels/scatter.h's kernel with atomic additions; indices outside [0, target_size) are skipped (the
// callers pass positions they computed; a kernel cannot raise).
void scatter_add(void* target, int64_t target_size, const int64_t* index, const void* values, int64_t count,
                 DType dtype, Stream stream);

void max_pool(const void* x, void* out, int64_t* indices, const PoolGeometry& g, DType dtype, Stream stream);
void max_pool_backward(const void* grad_out, const int64_t* indices, void* grad_x, int64_t P, int64_t in_size,
                       int64_t out_size, DType dtype, Stream stream);
void avg_pool(const void* x, void* out, const PoolGeometry& g, bool count_include_pad, int64_t divisor_override,
              DType dtype, Stream stream);
void avg_pool_backward(const void* grad_out, void* grad_x, const PoolGeometry& g, bool count_include_pad,
                       int64_t divisor_override, DType dtype, Stream stream);

void batch_norm_stats(const void* x, void* mean, void* var, int64_t N, int64_t C, int64_t S, DType dtype,
                      Stream stream);
void batch_norm_elemt(const void* x, const void* mean, const void* invstd, const void* weight, const void* bias,
                      void* out, int64_t N, int64_t C, int64_t S, DType dtype, Stream stream);
void batch_norm_backward_reduce(const void* grad, const void* x, const void* mean, void* sum_dy, void* sum_dy_xmu,
                                int64_t N, int64_t C, int64_t S, DType dtype, Stream stream);
void batch_norm_backward_elemt(const void* grad, const void* x, const void* mean, const void* invstd,
                               const void* weight, const void* sum_dy, const void* sum_dy_xmu, int64_t count,
                               void* grad_x, int64_t N, int64_t C, int64_t S, DType dtype, Stream stream);

// comm/reduce.h's reduce_into on device buffers (not yet used by the collectives).
void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op, Stream stream);

}  // namespace distml::cuda
