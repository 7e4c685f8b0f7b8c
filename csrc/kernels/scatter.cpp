#include "kernels/scatter.h"

#include <stdexcept>
#include <string>

namespace distml {

template <typename T>
static void scatter_add_typed(T* target, int64_t target_size, const int64_t* index, const T* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    int64_t j = index[i];
    if (j < 0 || j >= target_size) {
      throw std::out_of_range("scatter_add: index " + std::to_string(j) + " is out of bounds for size " +
                              std::to_string(target_size));
    }
    target[j] += values[i];
  }
}

void scatter_add(void* target, int64_t target_size, const int64_t* index, const void* values, int64_t count,
                 DType dtype) {
  switch (dtype) {
    case DType::f32:
      return scatter_add_typed(static_cast<float*>(target), target_size, index, static_cast<const float*>(values), count);
    case DType::f64:
      return scatter_add_typed(static_cast<double*>(target), target_size, index, static_cast<const double*>(values), count);
    case DType::i32:
      return scatter_add_typed(static_cast<int32_t*>(target), target_size, index, static_cast<const int32_t*>(values), count);
    case DType::i64:
      return scatter_add_typed(static_cast<int64_t*>(target), target_size, index, static_cast<const int64_t*>(values), count);
    default:
      unsupported_dtype("scatter_add", dtype);
  }
}

}  // namespace distml
