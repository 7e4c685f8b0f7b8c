#include "kernels/conv_direct.h"
// a * b + c as one fused multiply-add in the tiles (ISO C++ mode would keep them apart).
#pragma GCC optimize("fp-contract=fast")

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace distml {

namespace {

// One vector of a tile: 64 bytes, a zmm register with AVX-512, two ymm with AVX2.
template <typename T>
struct Lanes {
  typedef T vec __attribute__((vector_size(64)));
};
template <typename T>
using Vec = typename Lanes<T>::vec;
template <typename T>
constexpr int64_t kLanes = 64 / sizeof(T);
constexpr int64_t kMaxTile = 8;  // output positions (or kernel rows) per tile: 8 or 4, see with_tile

// Calls f(std::integral_constant<int64_t, P>) with the tile P that suits this CPU: with AVX-512 a
// vector is one register and 8 positions keep 8 fused multiply-adds in flight (4 would wait on
// their latency); with AVX2 a vector is two registers, and 4 positions make 8 (8 would spill).
template <typename F>
void with_tile(F f) {
  if (__builtin_cpu_supports("avx512f")) return f(std::integral_constant<int64_t, 8>{});
  f(std::integral_constant<int64_t, 4>{});
}

#define DISTML_CLONES __attribute__((target_clones("avx512f", "fma", "default")))

// GCC inlines functions of the default target into the target clones only when told to.
#define DISTML_INLINE __attribute__((always_inline)) inline

DISTML_INLINE int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }
DISTML_INLINE int64_t least(int64_t a, int64_t b) { return a < b ? a : b; }

// n zeros (whole vectors of them) aligned to a vector: a vector load that straddles two cache
// lines costs two.
template <typename T>
class Zeros {
 public:
  explicit Zeros(int64_t n) : store_(n / kLanes<T>, Vec<T>{}) {}
  T* data() { return reinterpret_cast<T*>(store_.data()); }
  T& operator[](int64_t i) { return data()[i]; }

 private:
  std::vector<Vec<T>> store_;
};

// One spatial dim of a direct convolution, read as a correlation: the source line (size values) is
// placed at offset + s * step in a zeroed line of `extent`; output position t's window starts at
// start + t * stride there, and its kernel element k lies k * dilation further.
struct Dim {
  int64_t size, offset, step, extent, out, start, stride, kernel, dilation;
};

// The convolution itself: forward, x padded.
Dim forward_dim(int64_t size, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation, int64_t out) {
  return {size, padding, 1, std::max(padding + size, (out - 1) * stride + (kernel - 1) * dilation + 1), out, 0,
          stride, kernel, dilation};
}

// Its input gradient as a correlation of grad_out, spread out by the stride, with the kernel reversed:
// grad_x[t] = sum over k of w[kernel - 1 - k] * spread[t + padding + k * dilation].
Dim transposed_dim(int64_t size, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation, int64_t out) {
  const int64_t offset = (kernel - 1) * dilation;
  return {out, offset, stride, std::max(size + padding + offset, offset + (out - 1) * stride + 1), size, padding, 1,
          kernel, dilation};
}

// Where a correlation over dims (D, H, W) reads its padded planes.
struct Plan {
  Dim d, h, w;
  int64_t plane, positions, rows;  // a padded plane's size; output positions; rows = channels * kernel size
  std::vector<int64_t> pos;        // per output position: its window's first element (the tail, to a multiple
                                   // of kMaxTile, repeats the last)
  std::vector<int64_t> row;        // per row (channel, kernel element): its element's offset from that
};

Plan make_plan(Dim d, Dim h, Dim w, int64_t channels) {
  // Along lines (stride 1) whole vectors are read: past a line's end they must read zeros.
  if (w.stride == 1)
    w.extent = std::max(w.extent, w.start + round_up(w.out, kLanes<float>) + (w.kernel - 1) * w.dilation);
  Plan p{d, h, w, d.extent * h.extent * w.extent, d.out * h.out * w.out, channels * d.kernel * h.kernel * w.kernel};
  for (int64_t a = 0; a < d.out; ++a)
    for (int64_t b = 0; b < h.out; ++b)
      for (int64_t c = 0; c < w.out; ++c)
        p.pos.push_back(((d.start + a * d.stride) * h.extent + h.start + b * h.stride) * w.extent + w.start +
                        c * w.stride);
  p.pos.resize(round_up(p.positions, kMaxTile), p.pos.empty() ? 0 : p.pos.back());
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t a = 0; a < d.kernel; ++a)
      for (int64_t i = 0; i < h.kernel; ++i)
        for (int64_t j = 0; j < w.kernel; ++j)
          p.row.push_back(c * p.plane + (a * d.dilation * h.extent + i * h.dilation) * w.extent + j * w.dilation);
  return p;
}

Plan forward_plan(const ConvGeometry3d& g, int64_t channels) {
  return make_plan(forward_dim(g.D, g.KD, g.SD, g.PD, g.DD, g.OD), forward_dim(g.H, g.KH, g.SH, g.PH, g.DH, g.OH),
                   forward_dim(g.W, g.KW, g.SW, g.PW, g.DW, g.OW), channels);
}

Plan transposed_plan(const ConvGeometry3d& g, int64_t channels) {
  return make_plan(transposed_dim(g.D, g.KD, g.SD, g.PD, g.DD, g.OD),
                   transposed_dim(g.H, g.KH, g.SH, g.PH, g.DH, g.OH),
                   transposed_dim(g.W, g.KW, g.SW, g.PW, g.DW, g.OW), channels);
}

// The padded planes of one sample's `channels` channels: zero, with the source placed inside.
template <typename T>
void place(const T* src, T* padded, const Plan& p, int64_t channels) {
  std::fill(padded, padded + channels * p.plane, T(0));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t a = 0; a < p.d.size; ++a)
      for (int64_t b = 0; b < p.h.size; ++b) {
        T* line = padded + c * p.plane + ((p.d.offset + a * p.d.step) * p.h.extent + p.h.offset + b * p.h.step) *
                  p.w.extent + p.w.offset;
        const T* from = src + ((c * p.d.size + a) * p.h.size + b) * p.w.size;
        for (int64_t t = 0; t < p.w.size; ++t) line[t * p.w.step] = from[t];
      }
}

// The register tile: acc[q] += a_s * b[step[s] + at[q]] for s < steps, a_s the vector at a + s * a_stride.
template <typename T, int64_t P>
DISTML_INLINE void tile(Vec<T> (&acc)[P], const T* a, int64_t a_stride, const T* b, const int64_t* step,
                        int64_t steps, const int64_t (&at)[P]) {
  for (int64_t s = 0; s < steps; ++s) {
    Vec<T> as;
    std::memcpy(&as, a + s * a_stride, sizeof as);
    const T* bs = b + step[s];
    for (int64_t q = 0; q < P; ++q) acc[q] += as * bs[at[q]];
  }
}

// One sample's correlation: y[grp * outs + o, t] = sum over rows r of the group of
// packed[grp, r, o] * padded[grp's planes][row[r] + pos[t]]. packed is (groups, rows, outs rounded up
// to whole vectors); the tiles' vectors run over its outputs.
template <typename T, int64_t P>
DISTML_INLINE void correlate(const T* padded, const T* packed, T* y, const Plan& p, int64_t groups, int64_t ins,
                             int64_t outs) {
  constexpr int64_t V = kLanes<T>;
  const int64_t width = round_up(outs, V), L = p.positions;
  for (int64_t grp = 0; grp < groups; ++grp) {
    T* yg = y + grp * outs * L;
    for (int64_t ob = 0; ob < outs; ob += V) {
      for (int64_t l0 = 0; l0 < L; l0 += P) {
        Vec<T> acc[P] = {};
        int64_t at[P];
        for (int64_t q = 0; q < P; ++q) at[q] = p.pos[l0 + q];
        tile(acc, packed + grp * p.rows * width + ob, width, padded + grp * ins * p.plane, p.row.data(), p.rows, at);
        for (int64_t q = 0; q < least(P, L - l0); ++q)
          for (int64_t v = 0; v < least(V, outs - ob); ++v) yg[(ob + v) * L + l0 + q] = acc[q][v];
      }
    }
  }
}

// correlate with the tiles' vectors along W instead: V consecutive output positions of a line (the
// window moving one element a position: stride 1) by P outputs, for few outputs on long lines.
template <typename T, int64_t P>
DISTML_INLINE void correlate_lines(const T* padded, const T* packed, T* y, const Plan& p, int64_t groups,
                                   int64_t ins, int64_t outs) {
  constexpr int64_t V = kLanes<T>;
  const int64_t width = round_up(outs, V), L = p.positions, W = p.w.out;
  for (int64_t grp = 0; grp < groups; ++grp) {
    const T *xg = padded + grp * ins * p.plane, *pg = packed + grp * p.rows * width;
    T* yg = y + grp * outs * L;
    for (int64_t line = 0; line < L; line += W) {
      for (int64_t w0 = 0; w0 < W; w0 += V) {
        const T* window = xg + p.pos[line + w0];
        for (int64_t c0 = 0; c0 < outs; c0 += P) {
          Vec<T> acc[P] = {};
          for (int64_t r = 0; r < p.rows; ++r) {
            Vec<T> as;
            std::memcpy(&as, window + p.row[r], sizeof as);
            const T* bs = pg + r * width + c0;
            for (int64_t q = 0; q < P; ++q) acc[q] += as * bs[q];
          }
          for (int64_t q = 0; q < least(P, outs - c0); ++q)
            for (int64_t v = 0; v < least(V, W - w0); ++v) yg[(c0 + q) * L + line + w0 + v] = acc[q][v];
        }
      }
    }
  }
}

// Whether n values fill more of their vectors than m do.
template <typename T>
bool fuller(int64_t n, int64_t m) {
  return n * round_up(m, kLanes<T>) > m * round_up(n, kLanes<T>);
}

// The correlation of every sample of src (N, groups * ins, source planes) into dst (N, groups * outs,
// positions), padded[.] = place(src sample), packed as in correlate: along lines where they fill
// the vectors better than the outputs do.
template <typename T, int64_t P>
DISTML_CLONES void correlate_batch(const T* src, const T* packed, T* dst, const Plan& p, int64_t N, int64_t groups,
                                   int64_t ins, int64_t outs) {
  const int64_t channels = groups * ins, sample = channels * p.d.size * p.h.size * p.w.size;
  const bool lines = p.w.stride == 1 && fuller<T>(p.w.out, outs);
#pragma omp parallel if (N * groups * outs * p.rows * p.positions > kParallelWork)
  {
    std::vector<T> padded(channels * p.plane);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      place(src + n * sample, padded.data(), p, channels);
      T* y = dst + n * groups * outs * p.positions;
      if (lines)
        correlate_lines<T, P>(padded.data(), packed, y, p, groups, ins, outs);
      else
        correlate<T, P>(padded.data(), packed, y, p, groups, ins, outs);
    }
  }
}

// out = conv(x, w): rows (c, k) of each group, w transposed to (groups, rows, Og rounded up).
template <typename T>
void forward_typed(const T* x, const T* w, T* out, const ConvGeometry3d& g, int64_t O, int64_t groups) {
  const int64_t Cg = g.C / groups, Og = O / groups;
  const Plan p = forward_plan(g, Cg);
  const int64_t width = round_up(Og, kLanes<T>);
  Zeros<T> packed(groups * p.rows * width);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t r = 0; r < p.rows; ++r) packed[(grp * p.rows + r) * width + o] = w[(grp * Og + o) * p.rows + r];
  with_tile([&](auto P) { correlate_batch<T, P>(x, packed.data(), out, p, g.N, groups, Cg, Og); });
}

// grad_x = the correlation of grad_out spread by the stride (transposed_dim): rows (o, k) of each
// group, w[o, c, kernel - 1 - k] packed to (groups, rows, Cg rounded up).
template <typename T>
void input_grad_typed(const T* grad_out, const T* w, T* grad_x, const ConvGeometry3d& g, int64_t O, int64_t groups) {
  const int64_t Cg = g.C / groups, Og = O / groups, K = g.KD * g.KH * g.KW;
  const Plan p = transposed_plan(g, Og);
  const int64_t width = round_up(Cg, kLanes<T>);
  Zeros<T> packed(groups * p.rows * width);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t k = 0; k < K; ++k)
          packed[(grp * p.rows + o * K + k) * width + c] = w[((grp * Og + o) * Cg + c) * K + K - 1 - k];
  with_tile([&](auto P) { correlate_batch<T, P>(grad_out, packed.data(), grad_x, p, g.N, groups, Og, Cg); });
}

// One sample's part of grad_w[o, r] = sum over positions l of grad_out[o, l] * padded[row[r] + pos[l]],
// added to sums (groups, Rt rows, width): the tiles' vectors run over output channels of grad_out
// transposed (L, Og rounded up to width), P rows a tile.
template <typename T, int64_t P>
DISTML_INLINE void weight_grad_channels(const T* gy, const T* padded, T* transposed, T* sums, const Plan& p,
                                        int64_t groups, int64_t ins, int64_t Og, int64_t width, int64_t Rt) {
  const int64_t L = p.positions, R = p.rows;
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t l = 0; l < L; ++l) transposed[(grp * L + l) * width + o] = gy[(grp * Og + o) * L + l];
  for (int64_t grp = 0; grp < groups; ++grp) {
    for (int64_t ob = 0; ob < Og; ob += kLanes<T>) {
      for (int64_t r0 = 0; r0 < R; r0 += P) {
        Vec<T> acc[P];
        T* sum = sums + (grp * Rt + r0) * width + ob;  // P rows of sums, width apart
        for (int64_t q = 0; q < P; ++q) std::memcpy(&acc[q], sum + q * width, sizeof acc[q]);
        int64_t at[P];
        for (int64_t q = 0; q < P; ++q) at[q] = p.row[least(r0 + q, R - 1)];
        tile(acc, transposed + grp * L * width + ob, width, padded + grp * ins * p.plane, p.pos.data(), L, at);
        for (int64_t q = 0; q < P; ++q) std::memcpy(sum + q * width, &acc[q], sizeof acc[q]);
      }
    }
  }
}

// weight_grad_channels with the vectors along lines instead (stride 1): V consecutive positions of
// grad_out (its lines padded with zeros to whole vectors) times those of the padded sample, 2
// outputs by P / 2 rows a tile, each vector summed at the end; for few outputs on long lines.
template <typename T, int64_t P>
DISTML_INLINE void weight_grad_lines(const T* gy, const T* padded, T* lined, T* sums, const Plan& p, int64_t groups,
                                     int64_t ins, int64_t Og, int64_t width, int64_t Rt) {
  constexpr int64_t V = kLanes<T>, A = 2, B = P / 2;
  const int64_t W = p.w.out, Wv = round_up(W, V), lines = p.positions / W, R = p.rows, Oa = round_up(Og, A);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t line = 0; line < lines; ++line)
        std::memcpy(lined + ((grp * Oa + o) * lines + line) * Wv, gy + ((grp * Og + o) * lines + line) * W,
                    sizeof(T) * W);
  for (int64_t grp = 0; grp < groups; ++grp) {
    const T* xg = padded + grp * ins * p.plane;
    for (int64_t o0 = 0; o0 < Og; o0 += A) {
      for (int64_t r0 = 0; r0 < R; r0 += B) {
        Vec<T> acc[A][B] = {};
        int64_t at[B];
        for (int64_t i = 0; i < B; ++i) at[i] = p.row[least(r0 + i, R - 1)];
        for (int64_t line = 0; line < lines; ++line) {
          for (int64_t w0 = 0; w0 < Wv; w0 += V) {
            const T* xs = xg + p.pos[line * W] + w0;
            const T* gs = lined + ((grp * Oa + o0) * lines + line) * Wv + w0;
            Vec<T> gv[A];
            for (int64_t j = 0; j < A; ++j) std::memcpy(&gv[j], gs + j * lines * Wv, sizeof gv[j]);
            for (int64_t i = 0; i < B; ++i) {
              Vec<T> xv;
              std::memcpy(&xv, xs + at[i], sizeof xv);
              for (int64_t j = 0; j < A; ++j) acc[j][i] += gv[j] * xv;
            }
          }
        }
        for (int64_t j = 0; j < least(A, Og - o0); ++j)
          for (int64_t i = 0; i < least(B, R - r0); ++i) {
            T total = 0;
            for (int64_t v = 0; v < V; ++v) total += acc[j][i][v];
            sums[(grp * Rt + r0 + i) * width + o0 + j] += total;
          }
      }
    }
  }
}

// Each thread's sums (groups, Rt rows, width) of grad_w over its samples: along lines where they
// fill the vectors better than the output channels do.
template <typename T, int64_t P>
DISTML_CLONES void weight_grad_sums(const T* grad_out, const T* x, T* sums, const ConvGeometry3d& g, int64_t O,
                                    int64_t groups, const Plan& p, int64_t width, int64_t Rt) {
  const int64_t Cg = g.C / groups, Og = O / groups, L = p.positions;
  const int64_t in_sample = g.C * g.D * g.H * g.W, per_thread = groups * Rt * width;
  const bool lines = p.w.stride == 1 && fuller<T>(p.w.out, Og);
  const int64_t scratch = lines ? groups * round_up(Og, 2) * (L / p.w.out) * round_up(p.w.out, kLanes<T>)
                                : groups * L * width;
#pragma omp parallel if (g.N * O * p.rows * L > kParallelWork)
  {
    std::vector<T> padded(g.C * p.plane);
    Zeros<T> arranged(round_up(scratch, kLanes<T>));  // grad_out transposed, or its lines padded
    T* mine = sums + omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.N; ++n) {
      place(x + n * in_sample, padded.data(), p, g.C);
      const T* gy = grad_out + n * O * L;
      if (lines)
        weight_grad_lines<T, P>(gy, padded.data(), arranged.data(), mine, p, groups, Cg, Og, width, Rt);
      else
        weight_grad_channels<T, P>(gy, padded.data(), arranged.data(), mine, p, groups, Cg, Og, width, Rt);
    }
  }
}

// grad_w: the threads' sums (weight_grad_sums) added.
template <typename T>
void weight_grad_typed(const T* grad_out, const T* x, T* grad_w, const ConvGeometry3d& g, int64_t O, int64_t groups) {
  const int64_t Og = O / groups;
  const Plan p = forward_plan(g, g.C / groups);
  const int64_t R = p.rows, width = round_up(Og, kLanes<T>), Rt = round_up(R, kMaxTile);
  const int64_t per_thread = groups * Rt * width;
  std::vector<T> sums(omp_get_max_threads() * per_thread, T(0));
  with_tile([&](auto P) { weight_grad_sums<T, P>(grad_out, x, sums.data(), g, O, groups, p, width, Rt); });
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t r = 0; r < R; ++r) {
        T total = 0;
        for (size_t at = (grp * Rt + r) * width + o; at < sums.size(); at += per_thread) total += sums[at];
        grad_w[(grp * Og + o) * R + r] = total;
      }
}

}  // namespace

void conv_direct(const void* x, const void* w, void* out, const ConvGeometry3d& g, int64_t O, int64_t groups,
                 DType dtype) {
  switch (dtype) {
    case DType::f32:
      return forward_typed(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(out), g,
                           O, groups);
    case DType::f64:
      return forward_typed(static_cast<const double*>(x), static_cast<const double*>(w), static_cast<double*>(out),
                           g, O, groups);
    default: unsupported_dtype("conv_direct", dtype);
  }
}

void conv_direct_input_grad(const void* grad_out, const void* w, void* grad_x, const ConvGeometry3d& g, int64_t O,
                            int64_t groups, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return input_grad_typed(static_cast<const float*>(grad_out), static_cast<const float*>(w),
                              static_cast<float*>(grad_x), g, O, groups);
    case DType::f64:
      return input_grad_typed(static_cast<const double*>(grad_out), static_cast<const double*>(w),
                              static_cast<double*>(grad_x), g, O, groups);
    default: unsupported_dtype("conv_direct_input_grad", dtype);
  }
}

void conv_direct_weight_grad(const void* grad_out, const void* x, void* grad_w, const ConvGeometry3d& g, int64_t O,
                             int64_t groups, DType dtype) {
  switch (dtype) {
    case DType::f32:
      return weight_grad_typed(static_cast<const float*>(grad_out), static_cast<const float*>(x),
                               static_cast<float*>(grad_w), g, O, groups);
    case DType::f64:
      return weight_grad_typed(static_cast<const double*>(grad_out), static_cast<const double*>(x),
                               static_cast<double*>(grad_w), g, O, groups);
    default: unsupported_dtype("conv_direct_weight_grad", dtype);
  }
}

}  // namespace distml
