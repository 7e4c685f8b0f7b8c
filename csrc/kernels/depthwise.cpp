#include "kernels/depthwise.h"

#include <cstring>

namespace distml {

namespace {

// Calls row(out_offset, in_offset, count) for every output row segment of kernel offset k whose
// inputs lie inside x: out_offset indexes an output plane, in_offset an input plane (the input of
// output position ow is in_offset + ow*SW).
template <typename Row>
void for_each_row(const ConvGeometry3d& g, int64_t k, Row row) {
  const int64_t a = k / (g.KH * g.KW), i = k % (g.KH * g.KW) / g.KW, j = k % g.KW;
  const Spans s = spans(g, a, i, j);
  if (s.w.lo >= s.w.hi) return;
  for (int64_t od = s.d.lo; od < s.d.hi; ++od) {
    for (int64_t oh = s.h.lo; oh < s.h.hi; ++oh) {
      const int64_t id = od * g.SD + a * g.DD - g.PD, ih = oh * g.SH + i * g.DH - g.PH;
      row((od * g.OH + oh) * g.OW + s.w.lo, (id * g.H + ih) * g.W + s.w.lo * g.SW + j * g.DW - g.PW,
          s.w.hi - s.w.lo);
    }
  }
}

template <typename T>
void forward_typed(const T* x, const T* w, T* out, const ConvGeometry3d& g, int64_t M) {
  const int64_t K = g.KD * g.KH * g.KW, O = g.C * M, plane = g.D * g.H * g.W, area = g.OD * g.OH * g.OW;
  const int64_t SW = g.SW;
#pragma omp parallel for schedule(static) if (g.N * O * area * K > kParallelWork)
  for (int64_t no = 0; no < g.N * O; ++no) {
    const int64_t n = no / O, o = no % O, c = o / M;
    const T* in = x + (n * g.C + c) * plane;
    T* y = out + no * area;
    std::memset(y, 0, sizeof(T) * area);
    for (int64_t k = 0; k < K; ++k) {
      const T wk = w[o * K + k];
      for_each_row(g, k, [&](int64_t out_at, int64_t in_at, int64_t count) {
        T* __restrict dst = y + out_at;
        const T* __restrict src = in + in_at;
        if (SW == 1) {
          for (int64_t q = 0; q < count; ++q) dst[q] += wk * src[q];
        } else {
          for (int64_t q = 0; q < count; ++q) dst[q] += wk * src[q * SW];
        }
      });
    }
  }
}

template <typename T>
void input_grad_typed(const T* grad_out, const T* w, T* grad_x, const ConvGeometry3d& g, int64_t M) {
  const int64_t K = g.KD * g.KH * g.KW, O = g.C * M, plane = g.D * g.H * g.W, area = g.OD * g.OH * g.OW;
  const int64_t SW = g.SW;
#pragma omp parallel for schedule(static) if (g.N * O * area * K > kParallelWork)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t n = nc / g.C, c = nc % g.C;
    T* gx = grad_x + nc * plane;
    std::memset(gx, 0, sizeof(T) * plane);
    for (int64_t o = c * M; o < (c + 1) * M; ++o) {
      const T* gy = grad_out + (n * O + o) * area;
      for (int64_t k = 0; k < K; ++k) {
        const T wk = w[o * K + k];
        for_each_row(g, k, [&](int64_t out_at, int64_t in_at, int64_t count) {
          T* __restrict dst = gx + in_at;
          const T* __restrict src = gy + out_at;
          if (SW == 1) {
            for (int64_t q = 0; q < count; ++q) dst[q] += wk * src[q];
          } else {
            for (int64_t q = 0; q < count; ++q) dst[q * SW] += wk * src[q];
          }
        });
      }
    }
  }
}

template <typename T>
void weight_grad_typed(const T* grad_out, const T* x, T* grad_w, const ConvGeometry3d& g, int64_t M) {
  const int64_t K = g.KD * g.KH * g.KW, O = g.C * M, plane = g.D * g.H * g.W, area = g.OD * g.OH * g.OW;
  const int64_t SW = g.SW;
#pragma omp parallel for schedule(static) if (g.N * O * area * K > kParallelWork)
  for (int64_t o = 0; o < O; ++o) {
    const int64_t c = o / M;
    for (int64_t k = 0; k < K; ++k) {
      T sum = 0;
      for (int64_t n = 0; n < g.N; ++n) {
        const T* gy = grad_out + (n * O + o) * area;
        const T* in = x + (n * g.C + c) * plane;
        for_each_row(g, k, [&](int64_t out_at, int64_t in_at, int64_t count) {
          T row = 0;
          for (int64_t q = 0; q < count; ++q) row += gy[out_at + q] * in[in_at + q * SW];
          sum += row;
        });
      }
      grad_w[o * K + k] = sum;
    }
  }
}

}  // namespace

void depthwise_conv(const void* x, const void* w, void* out, const ConvGeometry3d& g, int64_t M, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return forward_typed(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(out), g, M);
    case DType::f64:
      return forward_typed(static_cast<const double*>(x), static_cast<const double*>(w), static_cast<double*>(out), g,
                           M);
    default: unsupported_dtype("depthwise_conv", dtype);
  }
}

void depthwise_conv_input_grad(const void* grad_out, const void* w, void* grad_x, const ConvGeometry3d& g,
                               int64_t M, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return input_grad_typed(static_cast<const float*>(grad_out), static_cast<const float*>(w),
                              static_cast<float*>(grad_x), g, M);
    case DType::f64:
      return input_grad_typed(static_cast<const double*>(grad_out), static_cast<const double*>(w),
                              static_cast<double*>(grad_x), g, M);
    default: unsupported_dtype("depthwise_conv_input_grad", dtype);
  }
}

void depthwise_conv_weight_grad(const void* grad_out, const void* x, void* grad_w, const ConvGeometry3d& g,
                                int64_t M, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return weight_grad_typed(static_cast<const float*>(grad_out), static_cast<const float*>(x),
                               static_cast<float*>(grad_w), g, M);
    case DType::f64:
      return weight_grad_typed(static_cast<const double*>(grad_out), static_cast<const double*>(x),
                               static_cast<double*>(grad_w), g, M);
    default: unsupported_dtype("depthwise_conv_weight_grad", dtype);
  }
}

}  // namespace distml
