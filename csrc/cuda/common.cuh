// Helpers for the CUDA launchers: error checks, the device of a pointer, block reductions.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

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

constexpr int kWarp = 32;

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
