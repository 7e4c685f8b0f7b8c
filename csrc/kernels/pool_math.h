// Pooling-window arithmetic shared by kernels/pool.cpp and cuda/pool.cu (geometry: kernels/pool.h).
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/host_device.h"
#include "kernels/pool.h"

namespace distml::pool_math {

// Keep v when it beats best (branch-free: random data mispredicts a branch half the time).
// NaN always wins, so the last NaN of a window is the maximum, as in PyTorch.
template <typename T>
DISTML_HD void take_max(T v, int64_t q, T& best, int64_t& best_index) {
  const bool take = (v > best) | (v != v);
  best = take ? v : best;
  best_index = take ? q : best_index;
}

// Max over the window rows [h0, h1) x columns [w0, w1) of one depth slice range, clipped to
// the input, with dilation; `best` starts at -inf so padding never wins.
template <typename T>
DISTML_HD void clipped_window_max(const T* plane, const PoolGeometry& g, int64_t d0, int64_t d1, int64_t h0,
                                  int64_t h1, int64_t w0, int64_t w1, T& best, int64_t& best_index) {
  best = -std::numeric_limits<T>::infinity();
  best_index = (d0 * g.H + h0) * g.W + w0;
  for (int64_t d = d0; d < d1; d += g.DD)
    for (int64_t h = h0; h < h1; h += g.DH)
      for (int64_t w = w0; w < w1; w += g.DW) {
        const int64_t q = (d * g.H + h) * g.W + w;
        take_max(plane[q], q, best, best_index);
      }
}

// The first in-range window position of a dimension: start, stepped past the padding by
// whole dilations, and the clipped end.
DISTML_HD void clip_start(int64_t& start, int64_t& end, int64_t k, int64_t dilation, int64_t size) {
  end = min_of(start + (k - 1) * dilation + 1, size);
  while (start < 0) start += dilation;
}

// The maximum of output (od, oh, ow)'s window and its flat index in the plane.
template <typename T>
DISTML_HD void window_max(const T* plane, const PoolGeometry& g, int64_t od, int64_t oh, int64_t ow, T& best,
                          int64_t& best_index) {
  int64_t d0 = od * g.SD - g.PD, h0 = oh * g.SH - g.PH, w0 = ow * g.SW - g.PW, d1, h1, w1;
  clip_start(d0, d1, g.KD, g.DD, g.D);
  clip_start(h0, h1, g.KH, g.DH, g.H);
  clip_start(w0, w1, g.KW, g.DW, g.W);
  clipped_window_max(plane, g, d0, d1, h0, h1, w0, w1, best, best_index);
}

// One dimension of an average window: [begin, end) clipped to the input, and the length of
// the window clipped to the padded input (PyTorch's count_include_pad extent).
struct Extent {
  int64_t begin, end, padded;
};

DISTML_HD Extent avg_extent(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size) {
  const int64_t begin = o * stride - pad, end = min_of(begin + k, size + pad);
  return {max_of<int64_t>(begin, 0), min_of(end, size), end - begin};
}

DISTML_HD int64_t avg_divisor(const Extent& d, const Extent& h, const Extent& w, bool count_include_pad,
                              int64_t divisor_override) {
  if (divisor_override) return divisor_override;
  if (count_include_pad) return d.padded * h.padded * w.padded;
  return (d.end - d.begin) * (h.end - h.begin) * (w.end - w.begin);
}

// The average window of output (od, oh, ow) and its divisor (0 only for an empty window).
struct AvgWindow {
  Extent d, h, w;
  int64_t divisor;
};

DISTML_HD AvgWindow avg_window(const PoolGeometry& g, int64_t od, int64_t oh, int64_t ow, bool count_include_pad,
                               int64_t divisor_override) {
  const Extent d = avg_extent(od, g.SD, g.PD, g.KD, g.D), h = avg_extent(oh, g.SH, g.PH, g.KH, g.H),
               w = avg_extent(ow, g.SW, g.PW, g.KW, g.W);
  return {d, h, w, avg_divisor(d, h, w, count_include_pad, divisor_override)};
}

// f(q) for the flat plane index q of every input under the window d x h x w.
template <typename F>
DISTML_HD void for_each_in_window(const PoolGeometry& g, const Extent& d, const Extent& h, const Extent& w, F f) {
  for (int64_t i = d.begin; i < d.end; ++i)
    for (int64_t j = h.begin; j < h.end; ++j)
      for (int64_t k = w.begin; k < w.end; ++k) f((i * g.H + j) * g.W + k);
}

template <typename T>
DISTML_HD T window_average(const T* plane, const PoolGeometry& g, const Extent& d, const Extent& h, const Extent& w,
                           int64_t divisor) {
  T sum = 0;
  for_each_in_window(g, d, h, w, [&](int64_t q) { sum += plane[q]; });
  return divisor ? sum / static_cast<T>(divisor) : sum;
}

// What each input under a window receives of its output's gradient (0 for an empty window).
template <typename T>
DISTML_HD T window_share(T grad, int64_t divisor) {
  return divisor ? grad / static_cast<T>(divisor) : T(0);
}

}  // namespace distml::pool_math
