#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Pooling windows over P planes of size D x H x W (1-D and 2-D pooling set the leading sizes
// to 1, with kernel 1, stride 1, padding 0, dilation 1): kernel, stride, front/top/left
// padding (the back/bottom/right padding is implied by the output size), dilation, output size.
struct PoolGeometry {
  int64_t P, D, H, W, KD, KH, KW, SD, SH, SW, PD, PH, PW, DD, DH, DW, OD, OH, OW;
};

// Max over each window of x (P, D, H, W): out (P, OD, OH, OW) and, per output, the flat index
// (d*H + h)*W + w of its maximum within the plane (the first one; NaN wins, the last NaN).
// Padding never wins. Parallel over planes.
void max_pool(const void* x, void* out, int64_t* indices, const PoolGeometry& g, DType dtype);

// grad_x (P, in_size) = 0, then grad_x[p, indices[p, o]] += grad_out[p, o] for o < out_size:
// the backward of every max pooling (sliding or adaptive). Parallel over planes.
void max_pool_backward(const void* grad_out, const int64_t* indices, void* grad_x, int64_t P, int64_t in_size,
                       int64_t out_size, DType dtype);

// Average over each window with PyTorch's divisor: divisor_override when it is not 0, else the
// window clipped to the padded input (count_include_pad) or to the input. ceil_mode windows may
// overhang the padding.
void avg_pool(const void* x, void* out, const PoolGeometry& g, bool count_include_pad, int64_t divisor_override,
              DType dtype);

void avg_pool_backward(const void* grad_out, void* grad_x, const PoolGeometry& g, bool count_include_pad,
                       int64_t divisor_override, DType dtype);

}  // namespace distml
