#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// The geometry of a convolution over (N, C, D, H, W): kernel KD x KH x KW, stride, front/top/left
// padding (the rest is implied by the output sizes), dilation. 1-D and 2-D convolutions are the
// case D = KD = SD = DD = OD = 1, PD = 0 (and H likewise for 1-D).
struct ConvGeometry3d {
  int64_t N, C, D, H, W, KD, KH, KW, SD, SH, SW, PD, PH, PW, DD, DH, DW, OD, OH, OW;
};

// The output positions [lo, hi) of one kernel offset whose input position lo*stride + offset
// lies inside [0, size).
struct Span {
  int64_t lo, hi;
};

inline Span inside(int64_t out, int64_t stride, int64_t offset, int64_t size) {
  int64_t lo = 0, hi = out;
  while (lo < out && lo * stride + offset < 0) ++lo;
  while (hi > lo && (hi - 1) * stride + offset >= size) --hi;
  return {lo, hi};
}

// Those ranges along D, H and W for kernel offset (a, i, j).
struct Spans {
  Span d, h, w;
};

inline Spans spans(const ConvGeometry3d& g, int64_t a, int64_t i, int64_t j) {
  return {inside(g.OD, g.SD, a * g.DD - g.PD, g.D), inside(g.OH, g.SH, i * g.DH - g.PH, g.H),
          inside(g.OW, g.SW, j * g.DW - g.PW, g.W)};
}

// Unfold x (N, C, D, H, W) into columns: row r = ((c*KD + a)*KH + i)*KW + j, sample n, output
// position l = (od*OH + oh)*OW + ow holds x[n, c, od*SD - PD + a*DD, oh*SH - PH + i*DH,
// ow*SW - PW + j*DW] (0 in the padding). With batch_major the columns are (N, rows, L)
// (F.unfold's layout); otherwise (rows, N, L), so that a convolution over the whole batch is the
// one matrix product weight (O, rows) @ cols (rows, N*L). Parallel over rows.
void im2col(const void* x, void* cols, const ConvGeometry3d& g, bool batch_major, DType dtype);

// The adjoint of im2col: x = 0, then every column entry is added back to the x position it
// came from (overlapping windows accumulate; padding entries are dropped). Parallel over (c, n).
void col2im(const void* cols, void* x, const ConvGeometry3d& g, bool batch_major, DType dtype);

}  // namespace distml
