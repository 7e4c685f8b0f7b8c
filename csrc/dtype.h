// The dtype codes shared by every kernel. Python passes numpy's dtype.char-derived code.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace distml {

// Below this many elements of work, starting OpenMP threads costs more than it saves
// (measured: milliseconds per call on a loaded 2-core machine).
constexpr int64_t kParallelWork = int64_t{1} << 16;

// bf16 is ml_dtypes.bfloat16 (numpy char 'E'): the collectives and the half conversions take it;
// other kernels reject it as an unsupported dtype.
enum class DType : int { f16 = 0, f32 = 1, f64 = 2, i8 = 3, i16 = 4, i32 = 5, i64 = 6, u8 = 7, b8 = 8, bf16 = 9 };

inline const char* dtype_name(DType t) {
  static const char* names[] = {"float16", "float32", "float64", "int8", "int16",
                                "int32",   "int64",   "uint8",   "bool",  "bfloat16"};
  return names[static_cast<int>(t)];
}

inline size_t dtype_size(DType t) {
  static const size_t sizes[] = {2, 4, 8, 1, 2, 4, 8, 1, 1, 2};
  return sizes[static_cast<int>(t)];
}

[[noreturn]] inline void unsupported_dtype(const char* kernel, DType t) {
  throw std::invalid_argument(std::string(kernel) + ": unsupported dtype " + dtype_name(t));
}

}  // namespace distml
