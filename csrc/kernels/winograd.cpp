#include "kernels/winograd.h"

#include <algorithm>
#include <vector>

#include "kernels/vec_math.h"

namespace distml {

static int64_t tiles_along(int64_t outputs) { return (outputs + 1) / 2; }

// One tile row of a zero-padded plane (rows r .. r + 3, leading dimension ld): for each tile tx,
// B^T d B into the 16 streams out[k * stride + tx], B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
// Written out in scalars so that the loop over tiles vectorises (its loads strided by 2).
template <typename T>
DISTML_VECTOR_CLONES static void input_tile_row(const T* rows, int64_t ld, int64_t TW, T* __restrict out,
                                                int64_t stride) {
  const T* r0 = rows;
  const T* r1 = rows + ld;
  const T* r2 = rows + 2 * ld;
  const T* r3 = rows + 3 * ld;
#pragma omp simd
  for (int64_t tx = 0; tx < TW; ++tx) {
    const int64_t x = 2 * tx;
    // t = B^T d, column by column: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
    T t[4][4];
    for (int j = 0; j < 4; ++j) {
      const T d0 = r0[x + j], d1 = r1[x + j], d2 = r2[x + j], d3 = r3[x + j];
      t[0][j] = d0 - d2, t[1][j] = d1 + d2, t[2][j] = d2 - d1, t[3][j] = d1 - d3;
    }
    for (int i = 0; i < 4; ++i) {  // (B^T d) B, the same combination along each row
      out[(i * 4 + 0) * stride + tx] = t[i][0] - t[i][2];
      out[(i * 4 + 1) * stride + tx] = t[i][1] + t[i][2];
      out[(i * 4 + 2) * stride + tx] = t[i][2] - t[i][1];
      out[(i * 4 + 3) * stride + tx] = t[i][1] - t[i][3];
    }
  }
}

template <typename T>
static void input_typed(const T* x, T* tiles, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad, int64_t OH,
                        int64_t OW) {
  const int64_t TH = tiles_along(OH), TW = tiles_along(OW), T_all = N * TH * TW;
  const int64_t PH = 2 * TH + 2, PW = 2 * TW + 2;  // the padded plane every tile reads inside
#pragma omp parallel
  {
    std::vector<T> padded(PH * PW);
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        std::fill(padded.begin(), padded.end(), T(0));
        const T* plane = x + (n * C + c) * H * W;
        for (int64_t h = 0; h < H && h + pad < PH; ++h)
          std::copy(plane + h * W, plane + h * W + std::min(W, PW - pad), padded.data() + (h + pad) * PW + pad);
        T* out = tiles + c * T_all + n * TH * TW;
        for (int64_t ty = 0; ty < TH; ++ty)
          input_tile_row(padded.data() + 2 * ty * PW, PW, TW, out + ty * TW, C * T_all);
      }
  }
}

// One tile row of products (16 streams m[k * stride + tx]) into output rows y0 and y1 (2 TW
// columns each): A^T m A, A^T = [1 1 1 0; 0 1 -1 -1].
template <typename T>
DISTML_VECTOR_CLONES static void output_tile_row(const T* m, int64_t stride, int64_t TW, T* __restrict y0,
                                                 T* __restrict y1) {
#pragma omp simd
  for (int64_t tx = 0; tx < TW; ++tx) {
    T s[2][4];
    for (int j = 0; j < 4; ++j) {
      const T m0 = m[j * stride + tx], m1 = m[(4 + j) * stride + tx], m2 = m[(8 + j) * stride + tx],
              m3 = m[(12 + j) * stride + tx];
      s[0][j] = m0 + m1 + m2;
      s[1][j] = m1 - m2 - m3;
    }
    y0[2 * tx] = s[0][0] + s[0][1] + s[0][2];
    y0[2 * tx + 1] = s[0][1] - s[0][2] - s[0][3];
    y1[2 * tx] = s[1][0] + s[1][1] + s[1][2];
    y1[2 * tx + 1] = s[1][1] - s[1][2] - s[1][3];
  }
}

template <typename T>
static void output_typed(const T* products, T* out, int64_t N, int64_t O, int64_t OH, int64_t OW) {
  const int64_t TH = tiles_along(OH), TW = tiles_along(OW), T_all = N * TH * TW;
#pragma omp parallel
  {
    std::vector<T> rows(2 * 2 * TW);  // a tile row's two output rows, uncropped
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) {
        const T* m = products + o * T_all + n * TH * TW;
        T* plane = out + (n * O + o) * OH * OW;
        for (int64_t ty = 0; ty < TH; ++ty) {
          output_tile_row(m + ty * TW, O * T_all, TW, rows.data(), rows.data() + 2 * TW);
          for (int64_t r = 0; r < 2 && 2 * ty + r < OH; ++r)
            std::copy(rows.data() + r * 2 * TW, rows.data() + r * 2 * TW + OW, plane + (2 * ty + r) * OW);
        }
      }
  }
}

// One tile row of output gradients (rows g0, g1, 2 TW columns each) into the 16 streams
// m[k * stride + tx]: A g A^T, A = [1 0; 1 1; 1 -1; 0 -1].
template <typename T>
DISTML_VECTOR_CLONES static void output_grad_tile_row(const T* g0, const T* g1, int64_t TW, T* __restrict m,
                                                      int64_t stride) {
#pragma omp simd
  for (int64_t tx = 0; tx < TW; ++tx) {
    const T a0 = g0[2 * tx], b0 = g0[2 * tx + 1], a1 = g1[2 * tx], b1 = g1[2 * tx + 1];
    // A g: rows (a0, b0), (a0 + a1, b0 + b1), (a0 - a1, b0 - b1), (-a1, -b1); then each row (a, b)
    // times A^T: (a, a + b, a - b, -b).
    const T rows[4][2] = {{a0, b0}, {a0 + a1, b0 + b1}, {a0 - a1, b0 - b1}, {-a1, -b1}};
    for (int i = 0; i < 4; ++i) {
      const T a = rows[i][0], b = rows[i][1];
      m[(i * 4 + 0) * stride + tx] = a;
      m[(i * 4 + 1) * stride + tx] = a + b;
      m[(i * 4 + 2) * stride + tx] = a - b;
      m[(i * 4 + 3) * stride + tx] = -b;
    }
  }
}

template <typename T>
static void output_grad_typed(const T* grad_out, T* products_grad, int64_t N, int64_t O, int64_t OH, int64_t OW) {
  const int64_t TH = tiles_along(OH), TW = tiles_along(OW), T_all = N * TH * TW;
#pragma omp parallel
  {
    std::vector<T> rows(2 * 2 * TW, T(0));  // a tile row's two gradient rows, zero past OW
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) {
        const T* plane = grad_out + (n * O + o) * OH * OW;
        T* m = products_grad + o * T_all + n * TH * TW;
        for (int64_t ty = 0; ty < TH; ++ty) {
          for (int64_t r = 0; r < 2; ++r) {
            T* row = rows.data() + r * 2 * TW;
            if (2 * ty + r < OH)
              std::copy(plane + (2 * ty + r) * OW, plane + (2 * ty + r + 1) * OW, row);
            else
              std::fill(row, row + OW, T(0));
          }
          output_grad_tile_row(rows.data(), rows.data() + 2 * TW, TW, m + ty * TW, O * T_all);
        }
      }
  }
}

void winograd_input_tiles(const void* x, void* tiles, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad,
                          int64_t OH, int64_t OW, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return input_typed(static_cast<const float*>(x), static_cast<float*>(tiles), N, C, H, W, pad, OH, OW);
    case DType::f64:
      return input_typed(static_cast<const double*>(x), static_cast<double*>(tiles), N, C, H, W, pad, OH, OW);
    default: unsupported_dtype("winograd_input_tiles", dtype);
  }
}

void winograd_output_tiles(const void* products, void* out, int64_t N, int64_t O, int64_t OH, int64_t OW,
                           DType dtype) {
  switch (dtype) {
    case DType::f32:
      return output_typed(static_cast<const float*>(products), static_cast<float*>(out), N, O, OH, OW);
    case DType::f64:
      return output_typed(static_cast<const double*>(products), static_cast<double*>(out), N, O, OH, OW);
    default: unsupported_dtype("winograd_output_tiles", dtype);
  }
}

void winograd_output_tiles_grad(const void* grad_out, void* products_grad, int64_t N, int64_t O, int64_t OH,
                                int64_t OW, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return output_grad_typed(static_cast<const float*>(grad_out), static_cast<float*>(products_grad), N, O, OH,
                               OW);
    case DType::f64:
      return output_grad_typed(static_cast<const double*>(grad_out), static_cast<double*>(products_grad), N, O, OH,
                               OW);
    default: unsupported_dtype("winograd_output_tiles_grad", dtype);
  }
}

}  // namespace distml
