// The elementwise reductions shared by comm/reduce.cpp and cuda/reduce.cu: ReduceOp's arithmetic and
// bfloat16's conversions (float16 uses each side's native conversions).
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "comm/reduce.h"
#include "kernels/host_device.h"

namespace distml::reduce_math {

// a (Op) b, in T; max is `a > b ? a : b` and min `a < b ? a : b` (a NaN in b wins, one in a does not).
template <ReduceOp Op>
struct Combine {
  template <typename T>
  DISTML_HD T operator()(T a, T b) const {
    static_assert(Op != ReduceOp::avg, "avg is a sum divided afterwards");
    if constexpr (Op == ReduceOp::sum) return a + b;
    else if constexpr (Op == ReduceOp::prod) return a * b;
    else if constexpr (Op == ReduceOp::max) return a > b ? a : b;
    else return a < b ? a : b;
  }
};

// reduce_into's check on both devices: avg is not elementwise (reduce.h).
inline void require_elementwise(ReduceOp op) {
  if (op == ReduceOp::avg) throw std::invalid_argument("reduce: avg is a sum divided afterwards, not an elementwise op");
}

// bfloat16: the top half of a float32. Each step computes in float32 and rounds to nearest even
// (c10::BFloat16's rounding, so a sum is rounded once per rank added, as PyTorch's ring does).
DISTML_HD float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

DISTML_HD uint16_t float_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // a quiet NaN
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace distml::reduce_math
