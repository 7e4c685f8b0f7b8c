// bfloat16 <-> float32 on the bits: bfloat16 is the top half of a float32. Rounds to nearest even
// (c10::BFloat16's and ml_dtypes' rounding); a NaN stays a (quiet) NaN.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"

namespace distml {

DISTML_HD float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

DISTML_HD uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace distml
