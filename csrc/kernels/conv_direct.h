#pragma once
#include <cstdint>

#include "dtype.h"
#include "kernels/im2col.h"

namespace distml {

// Direct convolutions for small planes, with no columns in memory: each sample's input is copied
// once into a zero-padded plane that every window reads inside, and the products run as register
// tiles of 8 (AVX-512) or 4 (AVX2) output positions or kernel rows by a vector of 16 floats or 8
// doubles, over channels or along the lines of a plane, whichever fills the vectors better (the
// instruction set is picked at run time). g describes the window over x (N, C, D, H, W); w is
// (O, C / groups, KD, KH, KW) and out (N, O, OD, OH, OW). Parallel over the batch.
void conv_direct(const void* x, const void* w, void* out, const ConvGeometry3d& g, int64_t O, int64_t groups,
                 DType dtype);

// grad_x (N, C, D, H, W) of conv_direct from grad_out (N, O, OD, OH, OW).
void conv_direct_input_grad(const void* grad_out, const void* w, void* grad_x, const ConvGeometry3d& g, int64_t O,
                            int64_t groups, DType dtype);

// grad_w (O, C / groups, KD, KH, KW) of conv_direct: the sum over the batch (each thread sums its
// samples, then the threads' sums are added).
void conv_direct_weight_grad(const void* grad_out, const void* x, void* grad_w, const ConvGeometry3d& g, int64_t O,
                             int64_t groups, DType dtype);

}  // namespace distml
