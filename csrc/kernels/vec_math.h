// CPU-only float32 arithmetic written so that the compiler vectorises the loops that call it
// (no libm calls, no branches). softmax.cpp uses it on contiguous lines; the CUDA kernels keep
// softmax_math.h's std::exp.
#pragma once
#include <cstdint>

// A loop's function compiled for AVX-512, for AVX2 + FMA and for any x86-64, the CPU picking at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DISTML_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DISTML_VECTOR_CLONES
#endif

namespace distml::vec_math {

// exp(x) within 2 ulp (Cephes' expf: exp(x) = 2^n * exp(r), |r| <= ln2 / 2, degree-6 polynomial
// for exp(r)). Below -87.33 it returns 0 (so exp(-inf) is 0, as std::exp); above 88.72, inf; NaN
// stays NaN. Rounds with the 1.5 * 2^23 trick, so it needs round-to-nearest (the default mode).
inline float exp(float x) {
  const float big = 12582912.0f;  // 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer
  float xc = x > 88.72f ? 88.72f : x;
  xc = xc < -87.33f ? -87.33f : xc;
  float n = (xc * 1.44269504088896341f + big) - big;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  y *= __builtin_bit_cast(float, bits);
  y = x < -87.33f ? 0.0f : y;
  y = x > 88.72f ? x * 2.0f : y;  // inf (x * 2 overflows; inf and NaN pass through)
  return x != x ? x : y;
}

}  // namespace distml::vec_math
