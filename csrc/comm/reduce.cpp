#include "comm/reduce.h"

#include <immintrin.h>

#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/reduce_math.h"

namespace distml {

const char* reduce_op_name(ReduceOp op) {
  static const char* names[] = {"sum", "prod", "max", "min", "avg"};
  return names[static_cast<int>(op)];
}

namespace {

using reduce_math::Combine;

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
    case ReduceOp::sum: apply<T, Compute>(d, s, n, Combine<ReduceOp::sum>{}); break;
    case ReduceOp::prod: apply<T, Compute>(d, s, n, Combine<ReduceOp::prod>{}); break;
    case ReduceOp::max: apply<T, Compute>(d, s, n, Combine<ReduceOp::max>{}); break;
    case ReduceOp::min: apply<T, Compute>(d, s, n, Combine<ReduceOp::min>{}); break;
    case ReduceOp::avg: break;  // rejected by reduce_into
  }
}

// float16 through F16C's 8-wide conversions: the compiler converts _Float16 one element at a time
// through libgcc calls, about 50x slower.
template <ReduceOp Op>
__attribute__((target("avx,f16c"))) void reduce_f16c(uint16_t* d, const uint16_t* s, size_t n) {
  constexpr Combine<Op> combine{};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i)));
    __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    __m256 r;
    if constexpr (Op == ReduceOp::sum) r = _mm256_add_ps(a, b);
    if constexpr (Op == ReduceOp::prod) r = _mm256_mul_ps(a, b);
    if constexpr (Op == ReduceOp::max) r = _mm256_max_ps(a, b);  // a > b ? a : b, as the scalar code
    if constexpr (Op == ReduceOp::min) r = _mm256_min_ps(a, b);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) d[i] = _cvtss_sh(combine(_cvtsh_ss(d[i]), _cvtsh_ss(s[i])), _MM_FROUND_TO_NEAREST_INT);
}

void reduce_f16(void* dst, const void* src, size_t n, ReduceOp op) {
  static const bool f16c = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  if (!f16c) return reduce_typed<_Float16, float>(dst, src, n, op);
  auto d = static_cast<uint16_t*>(dst);
  auto s = static_cast<const uint16_t*>(src);
  switch (op) {
    case ReduceOp::sum: reduce_f16c<ReduceOp::sum>(d, s, n); break;
    case ReduceOp::prod: reduce_f16c<ReduceOp::prod>(d, s, n); break;
    case ReduceOp::max: reduce_f16c<ReduceOp::max>(d, s, n); break;
    case ReduceOp::min: reduce_f16c<ReduceOp::min>(d, s, n); break;
    case ReduceOp::avg: break;  // rejected by reduce_into
  }
}

// bfloat16 (kernels/bfloat16.h): each step computes in float32 and rounds to nearest even, so a
// sum is rounded once per rank added, as PyTorch's ring does.
template <typename F>
inline void apply_bf16(uint16_t* __restrict d, const uint16_t* __restrict s, size_t n, F f) {
  for (size_t i = 0; i < n; ++i)
    d[i] = float_to_bf16(f(bf16_to_float(d[i]), bf16_to_float(s[i])));
}

void reduce_bf16(void* dst, const void* src, size_t n, ReduceOp op) {
  auto d = static_cast<uint16_t*>(dst);
  auto s = static_cast<const uint16_t*>(src);
  switch (op) {
    case ReduceOp::sum: apply_bf16(d, s, n, Combine<ReduceOp::sum>{}); break;
    case ReduceOp::prod: apply_bf16(d, s, n, Combine<ReduceOp::prod>{}); break;
    case ReduceOp::max: apply_bf16(d, s, n, Combine<ReduceOp::max>{}); break;
    case ReduceOp::min: apply_bf16(d, s, n, Combine<ReduceOp::min>{}); break;
    case ReduceOp::avg: break;  // rejected by reduce_into
  }
}

}  // namespace

// One AVX2 clone and a portable default, picked at load time.
__attribute__((target_clones("arch=haswell", "default")))
void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op) {
  reduce_math::require_elementwise(op);
  switch (dtype) {
    case DType::f16: reduce_f16(dst, src, count, op); break;
    case DType::bf16: reduce_bf16(dst, src, count, op); break;
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
