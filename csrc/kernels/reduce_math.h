// The elementwise reductions shared by comm/reduce.cpp and cuda/reduce.cu: ReduceOp's arithmetic
// (bfloat16's conversions are kernels/bfloat16.h's; float16 uses each side's native ones).
#pragma once
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
  if (op == ReduceOp::avg)
    throw std::invalid_argument("reduce: avg is a sum divided afterwards, not an elementwise op");
}

}  // namespace distml::reduce_math
