#include "kernels/half.h"

#include <immintrin.h>

#include "dtype.h"
#include "kernels/bfloat16.h"

namespace distml {

namespace {

bool has_f16c() {
  static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return yes;
}

__attribute__((target("avx,f16c"))) void to_half_f16c(const float* src, uint16_t* dst, int64_t n, float divisor) {
  const __m256 d = _mm256_set1_ps(divisor);
#pragma omp parallel for if (n >= kParallelWork) schedule(static)
  for (int64_t i = 0; i < n / 8 * 8; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    __m256 q = _mm256_div_ps(_mm256_cvtph_ps(h), d);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(q, _MM_FROUND_TO_NEAREST_INT));
  }
  for (int64_t i = n / 8 * 8; i < n; ++i)
    dst[i] = _cvtss_sh(_cvtsh_ss(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT)) / divisor, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("avx,f16c"))) void to_float_f16c(const uint16_t* src, float* dst, int64_t n) {
#pragma omp parallel for if (n >= kParallelWork) schedule(static)
  for (int64_t i = 0; i < n / 8 * 8; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (int64_t i = n / 8 * 8; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

}  // namespace

void f32_to_f16_divided(const float* src, uint16_t* dst, size_t n, float divisor) {
  if (has_f16c()) return to_half_f16c(src, dst, static_cast<int64_t>(n), divisor);
  auto s = src;
  auto d = reinterpret_cast<_Float16*>(dst);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<_Float16>(static_cast<float>(static_cast<_Float16>(s[i])) / divisor);
}

void f16_to_f32(const uint16_t* src, float* dst, size_t n) {
  if (has_f16c()) return to_float_f16c(src, dst, static_cast<int64_t>(n));
  auto s = reinterpret_cast<const _Float16*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
}

void f32_to_bf16_divided(const float* src, uint16_t* dst, size_t n, float divisor) {
  const auto count = static_cast<int64_t>(n);
#pragma omp parallel for simd if (count >= kParallelWork) schedule(static)
  for (int64_t i = 0; i < count; ++i) dst[i] = float_to_bf16(bf16_to_float(float_to_bf16(src[i])) / divisor);
}

void bf16_to_f32(const uint16_t* src, float* dst, size_t n) {
  const auto count = static_cast<int64_t>(n);
#pragma omp parallel for simd if (count >= kParallelWork) schedule(static)
  for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_float(src[i]);
}

}  // namespace distml
