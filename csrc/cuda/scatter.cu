// target[index[i]] += values[i] (kernels/scatter.h) on a CUDA device: one thread per value, atomic
// additions so that repeated indices accumulate.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace distml::cuda {
namespace {

template <typename T>
void scatter_add_typed(void* target_data, int64_t target_size, const int64_t* index, const void* values_data,
                       int64_t count, Stream stream) {
  T* target = static_cast<T*>(target_data);
  const T* values = static_cast<const T*>(values_data);
  launch_each(count, stream, [=] __device__(int64_t i) {
    const int64_t j = index[i];
    if (j >= 0 && j < target_size) atomic_add(target + j, values[i]);
  });
}

}  // namespace

void scatter_add(void* target, int64_t target_size, const int64_t* index, const void* values, int64_t count,
                 DType dtype, Stream stream) {
  if (count == 0) return;
  DeviceGuard guard(target, "scatter_add");
  switch (dtype) {
    case DType::f32: scatter_add_typed<float>(target, target_size, index, values, count, stream); break;
    case DType::f64: scatter_add_typed<double>(target, target_size, index, values, count, stream); break;
    case DType::i32: scatter_add_typed<int32_t>(target, target_size, index, values, count, stream); break;
    case DType::i64: scatter_add_typed<int64_t>(target, target_size, index, values, count, stream); break;
    default: unsupported_dtype("scatter_add", dtype);
  }
  check(cudaGetLastError(), "scatter_add");
}

}  // namespace distml::cuda
