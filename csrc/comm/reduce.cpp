#include "comm/reduce.h"

#include <cstdint>

namespace distml {

const char* reduce_op_name(ReduceOp op) {
  static const char* names[] = {"sum", "prod", "max", "min"};
  return names[static_cast<int>(op)];
}

namespace {

// Compute is the type the arithmetic runs in: float for float16, T otherwise.
template <typename T, typename Compute, typename F>
inline void apply(T* __restrict dst, const T* __restrict src, size_t n, F f) {
  for (size_t i = 0; i < n; ++i)
    dst[i] = static_cast<T>(f(static_cast<Compute>(dst[i]), static_cast<Compute>(src[i])));
}

template <typename T, typename Compute = T>
inline void reduce_typed(void* dst, const void* src, size_t n, ReduceOp op) {
  T* d = static_cast<T*>(dst);
  const T* s = static_cast<const T*>(src);
  switch (op) {
    case ReduceOp::sum: apply<T, Compute>(d, s, n, [](Compute a, Compute b) { return a + b; }); break;
    case ReduceOp::prod: apply<T, Compute>(d, s, n, [](Compute a, Compute b) { return a * b; }); break;
    case ReduceOp::max: apply<T, Compute>(d, s, n, [](Compute a, Compute b) { return a > b ? a : b; }); break;
    case ReduceOp::min: apply<T, Compute>(d, s, n, [](Compute a, Compute b) { return a < b ? a : b; }); break;
  }
}

}  // namespace

// One AVX2 + F16C clone (vcvtph2ps for float16) and a portable default, picked at load time.
__attribute__((target_clones("arch=haswell", "default")))
void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::f16: reduce_typed<_Float16, float>(dst, src, count, op); break;
    case DType::f32: reduce_typed<float>(dst, src, count, op); break;
    case DType::f64: reduce_typed<double>(dst, src, count, op); break;
    case DType::i8: reduce_typed<int8_t>(dst, src, count, op); break;
    case DType::i16: reduce_typed<int16_t>(dst, src, count, op); break;
    case DType::i32: reduce_typed<int32_t>(dst, src, count, op); break;
    case DType::i64: reduce_typed<int64_t>(dst, src, count, op); break;
    case DType::u8: reduce_typed<uint8_t>(dst, src, count, op); break;
    default: unsupported_dtype("reduce", dtype);
  }
}

}  // namespace distml
