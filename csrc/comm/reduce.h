// Elementwise reduction of one buffer into another: the arithmetic of every reducing collective.
#pragma once
#include <cstddef>

#include "dtype.h"

namespace distml {

// torch.distributed.ReduceOp's reductions; Python gets them as distml._C.ReduceOp (bindings.cpp).
// avg is not elementwise: distml.distributed reduces with sum and divides by the group size, so
// neither the wire nor reduce_into ever sees it.
enum class ReduceOp : int { sum = 0, prod = 1, max = 2, min = 3, avg = 4 };

const char* reduce_op_name(ReduceOp op);

// dst[i] = dst[i] (op) src[i] for i < count. float16 and bfloat16 are computed in float32,
// rounded to nearest even.
void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op);

}  // namespace distml
