#pragma once
#include <cstdint>

#include "dtype.h"
#include "kernels/im2col.h"

namespace distml {

// Depthwise convolutions (groups == input channels), computed directly: each output channel
// o = c*M + m reads input channel c only, so a plane at a time stays in cache and no columns are
// written. g describes the window over x (N, C, D, H, W); w is (C*M, K) with K = KD*KH*KW and out
// (N, C*M, OD, OH, OW). Parallel over output planes (forward), input planes (input gradient) and
// output channels (weight gradient).
void depthwise_conv(const void* x, const void* w, void* out, const ConvGeometry3d& g, int64_t M, DType dtype);

// grad_x (N, C, D, H, W) of depthwise_conv from grad_out (N, C*M, OD, OH, OW).
void depthwise_conv_input_grad(const void* grad_out, const void* w, void* grad_x, const ConvGeometry3d& g,
                               int64_t M, DType dtype);

// grad_w (C*M, K) of depthwise_conv: the sum over the batch and the output positions.
void depthwise_conv_weight_grad(const void* grad_out, const void* x, void* grad_w, const ConvGeometry3d& g,
                                int64_t M, DType dtype);

}  // namespace distml
