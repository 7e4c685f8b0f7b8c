#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// The geometry of a 2-D convolution window over an (N, C, H, W) input: kernel KH x KW,
// stride, top/left padding (the bottom/right padding is implied by OH/OW), dilation.
struct ConvGeometry {
  int64_t N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW;
};

// Unfold x (N, C, H, W) into cols (N, C*KH*KW, OH*OW): cols[n, (c*KH + i)*KW + j, oh*OW + ow]
// holds x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] (0 in the padding), so that a convolution
// is one batched matrix product weight (O, C*KH*KW) @ cols[n]. Parallel over n.
void im2col(const void* x, void* cols, const ConvGeometry& g, DType dtype);

// The adjoint of im2col: x = 0, then every cols entry is added back to the x position it
// came from (overlapping windows accumulate; padding entries are dropped). Parallel over n.
void col2im(const void* cols, void* x, const ConvGeometry& g, DType dtype);

}  // namespace distml
