// float32 <-> float16 / bfloat16 conversion for gradient compression and casts (F16C when the CPU has it).
#pragma once
#include <cstddef>
#include <cstdint>

namespace distml {

// dst[i] = half(half(src[i]) / divisor): the cast, then a float16 division (PyTorch's
// `t.to(torch.float16).div_(divisor)`), rounding to nearest even both times.
void f32_to_f16_divided(const float* src, uint16_t* dst, size_t n, float divisor);

// dst[i] = float(src[i]) (exact).
void f16_to_f32(const uint16_t* src, float* dst, size_t n);

// The same two for bfloat16: dst[i] = bf16(float(bf16(src[i])) / divisor), and back (exact).
void f32_to_bf16_divided(const float* src, uint16_t* dst, size_t n, float divisor);
void bf16_to_f32(const uint16_t* src, float* dst, size_t n);

}  // namespace distml
