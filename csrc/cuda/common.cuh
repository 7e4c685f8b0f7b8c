// Helpers for the CUDA launchers: error checks, the device of a pointer, grid sizes, elementwise
// launches, atomics and block reductions.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dtype.h"
#include "kernels/host_device.h"

namespace distml::cuda {

inline void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) throw std::runtime_error(std::string(what) + ": CUDA error: " + cudaGetErrorString(error));
}

// Makes the device that holds `ptr` current for the launches in this scope (cupy arrays may live on
// any device), and restores the previous one.
class DeviceGuard {
 public:
  DeviceGuard(const void* ptr, const char* what) {
    cudaPointerAttributes attributes;
    check(cudaPointerGetAttributes(&attributes, ptr), what);
    check(cudaGetDevice(&previous_), what);
    if (attributes.device >= 0 && attributes.device != previous_) {
      check(cudaSetDevice(attributes.device), what);
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// Runs launch(T{}) with T the float or double of a float32 or float64 `dtype` (others raise), on the
// device that holds `ptr`, then checks the launches; errors name `what`.
template <typename Launch>
void launch_float(const char* what, DType dtype, const void* ptr, Launch launch) {
  DeviceGuard guard(ptr, what);
  switch (dtype) {
    case DType::f32: launch(float{}); break;
    case DType::f64: launch(double{}); break;
    default: unsupported_dtype(what, dtype);
  }
  check(cudaGetLastError(), what);
}

constexpr int kWarp = 32;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// Blocks of `threads` for `work` items, capped (kernels stride over the rest).
inline int blocks_for(int64_t work, int threads) {
  return static_cast<int>(std::min(kMaxBlocks, (work + threads - 1) / threads));
}

template <typename F>
__global__ void each_index(int64_t n, F f) {
  const int64_t step = gridDim.x * int64_t{blockDim.x};
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += step) f(i);
}

// f(i) for every i < n, one thread per index, on `stream` (f: a __device__ lambda).
template <typename F>
void launch_each(int64_t n, cudaStream_t stream, F f) {
  if (n > 0) each_index<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(n, f);
}

// *p += v atomically, for the dtypes scatter_add and the pooling backwards take (int64 through the
// unsigned 64-bit atomic: two's complement addition is the same).
__device__ inline void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ inline void atomic_add(int32_t* p, int32_t v) { atomicAdd(p, v); }
__device__ inline void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

struct Max {
  template <typename T>
  __device__ T operator()(T a, T b) const { return max_of(a, b); }
};
struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// op(...) of `value` over the block (`identity`: op's neutral value); every thread gets the result.
// `shared` holds blockDim.x / 32 values; blockDim.x is a multiple of 32.
template <typename T, typename Op>
__device__ T block_reduce(T value, T* shared, Op op, T identity) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < warps ? shared[lane] : identity;
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      value = op(value, __shfl_down_sync(0xffffffffu, value, offset));
    if (lane == 0) shared[0] = value;
  }
  __syncthreads();
  T result = shared[0];
  __syncthreads();  // shared is reused by the next reduction
  return result;
}

}  // namespace distml::cuda
