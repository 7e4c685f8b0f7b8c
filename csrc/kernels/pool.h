#pragma once
#include <cstdint>

#include "dtype.h"
#include "kernels/im2col.h"

namespace distml {

// Max over each window of the P = N*C planes of x (P, H, W) (g.N holds P, g.C is 1):
// out (P, OH, OW) and, per output, the flat index ih*W + iw of its maximum (the first one;
// NaN wins). Padding never wins. Parallel over planes.
void max_pool2d(const void* x, void* out, int64_t* indices, const ConvGeometry& g, DType dtype);

// grad_x (P, H, W) = 0, then grad_x[p, indices[p, o]] += grad_out[p, o]. Parallel over planes.
void max_pool2d_backward(const void* grad_out, const int64_t* indices, void* grad_x, const ConvGeometry& g,
                         DType dtype);

// Average over each window (PyTorch's divisor rules: the window clipped to the padded input
// when count_include_pad, else to the input). `ceil_mode` windows may overhang the padding.
void avg_pool2d(const void* x, void* out, const ConvGeometry& g, bool count_include_pad, DType dtype);

void avg_pool2d_backward(const void* grad_out, void* grad_x, const ConvGeometry& g, bool count_include_pad,
                         DType dtype);

}  // namespace distml
