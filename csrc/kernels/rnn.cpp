// Floating-point exceptions are never inspected here; without trapping math the compiler may turn the
// selects in the gate loops into vector blends and vectorise them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "kernels/rnn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/vec_math.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DISTML_RNN_AVX2_GEMM 1
#endif

namespace distml {

static SgemmFn g_sgemm = nullptr;
static DgemmFn g_dgemm = nullptr;

void set_blas(SgemmFn sgemm, DgemmFn dgemm) {
  g_sgemm = sgemm;
  g_dgemm = dgemm;
}

bool blas_ready() { return g_sgemm != nullptr && g_dgemm != nullptr; }

static int blas_int(int64_t n) {
  if (n > std::numeric_limits<int>::max()) throw std::invalid_argument("rnn: a matrix dimension exceeds 2^31 - 1");
  return static_cast<int>(n);
}

// Row-major C (M, N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T, through the column-major BLAS:
// a row-major matrix is its transpose in column-major order, so C^T = op(B)^T op(A)^T is computed.
template <typename T>
static void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                 int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  char ta = trans_b ? 'T' : 'N', tb = trans_a ? 'T' : 'N';
  int m = blas_int(N), n = blas_int(M), k = blas_int(K), la = blas_int(ldb), lb = blas_int(lda), lc = blas_int(ldc);
  T alpha = 1;
  if constexpr (std::is_same_v<T, float>)
    g_sgemm(&ta, &tb, &m, &n, &k, &alpha, const_cast<T*>(B), &la, const_cast<T*>(A), &lb, &beta, C, &lc);
  else
    g_dgemm(&ta, &tb, &m, &n, &k, &alpha, const_cast<T*>(B), &la, const_cast<T*>(A), &lb, &beta, C, &lc);
}

// exp, tanh and the logistic function. float: Cephes' single-precision polynomials (a few ulp from the
// correctly rounded value) in a branch-free form the compiler vectorises, where the scalar libm calls would
// dominate the step; double: libm.
static inline float exp_of(float x) {
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  float fx = x * 1.44269504088896341f + 0.5f;
  int32_t n = static_cast<int32_t>(fx);
  n -= static_cast<float>(n) > fx;  // floor
  float fn = static_cast<float>(n);
  x = x - fn * 0.693359375f + fn * 2.12194440e-4f;  // x - n ln 2, in two parts
  float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x + 4.1665795894e-2f) * x +
             1.6666665459e-1f) * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  int32_t bits = (n + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

static inline float tanh_of(float x) {
  float z = x * x;
  float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                 3.33332819422e-1f) * z * x + x;
  float large = 1.0f - 2.0f / (exp_of(2.0f * std::fabs(x)) + 1.0f);
  large = x < 0.0f ? -large : large;
  return std::fabs(x) < 0.625f ? small : large;
}

static inline double exp_of(double x) { return std::exp(x); }
static inline double tanh_of(double x) { return std::tanh(x); }

template <typename T>
static inline T sigmoid(T v) {
  return T(1) / (T(1) + exp_of(-v));
}

static int64_t gate_count(RnnMode mode) {
  switch (mode) {
    case RnnMode::lstm: return 4;
    case RnnMode::gru: return 3;
    default: return 1;
  }
}

// The first row of each step and the total row count.
static std::vector<int64_t> step_offsets(const RnnShape& s, const int64_t* batch_sizes, int64_t* rows) {
  std::vector<int64_t> offsets(s.steps);
  int64_t total = 0;
  for (int64_t t = 0; t < s.steps; ++t) {
    offsets[t] = total;
    total += batch_sizes[t];
  }
  *rows = total;
  return offsets;
}

// A bias vector, or zeros when the layer has none.
template <typename T>
static std::vector<T> bias_or_zeros(const T* b, int64_t n) {
  return b ? std::vector<T>(b, b + n) : std::vector<T>(n, T(0));
}

// Per-thread buffers that outlive a call, so the large per-call scratch is not allocated (and page-faulted)
// anew each time; slot i of n elements, contents undefined.
template <typename T>
static T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[6];
  std::vector<T>& buffer = buffers[slot];
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

// out (cols, rows) = a (rows, cols) transposed.
template <typename T>
static void transpose(const T* a, int64_t rows, int64_t cols, T* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
}

// The per-step float32 products, C (M, N) = A (M, K) B (+ C), with the same B every step: B is packed once
// per call into panels of 16 columns (each K x 16, contiguous, zero-padded), and a 6 x 16 register-blocked
// AVX2 + FMA kernel sweeps each panel over every row block while it stays in L1. At these small sizes this
// beats the library GEMM, which re-packs B on every call. CPUs without AVX2 + FMA and float64 use BLAS.
constexpr int64_t kPanel = 16;

template <typename T>
struct StepGemm {
  const T* b = nullptr;  // row-major (K, N), leading dimension ldb: the BLAS path's operand
  int64_t K = 0, N = 0, ldb = 0;
  const float* panels = nullptr;  // the packed copy, or null: use BLAS

  // C = A B (accumulate false) or C += A B.
  void operator()(int64_t M, const T* a, int64_t lda, bool accumulate, T* c, int64_t ldc) const;
};

#ifdef DISTML_RNN_AVX2_GEMM
static bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// Rows [0, MR) of C's columns [0, cols) (cols <= 16) from one packed panel.
template <int MR>
__attribute__((target("avx2,fma"))) static void panel_kernel(int64_t K, const float* a, int64_t lda,
                                                             const float* panel, bool accumulate, float* c,
                                                             int64_t ldc, int64_t cols) {
  __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(panel + k * kPanel), b1 = _mm256_loadu_ps(panel + k * kPanel + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 x = _mm256_broadcast_ss(a + r * lda + k);
      lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
      hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
    }
  }
  // Lanes at or past `cols` are masked off (the mask's sign bits).
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lane);
  const __m256i mask_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols) - 8), lane);
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    float* out = c + r * ldc;
    __m256 v0 = lo[r], v1 = hi[r];
    if (accumulate) {
      v0 = _mm256_add_ps(v0, _mm256_maskload_ps(out, mask_lo));
      v1 = _mm256_add_ps(v1, _mm256_maskload_ps(out + 8, mask_hi));
    }
    _mm256_maskstore_ps(out, mask_lo, v0);
    _mm256_maskstore_ps(out + 8, mask_hi, v1);
  }
}

// The same product with one 16-wide vector per row, on CPUs with AVX-512: half the instructions
// per panel, and 8 rows at a time (8 accumulators keep the FMA units busy). The sums run in the
// same order, so the results equal the AVX2 kernel's bit for bit.
static bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

template <int MR>
__attribute__((target("avx512f"))) static void panel_kernel_avx512(int64_t K, const float* a, int64_t lda,
                                                                  const float* panel, bool accumulate, float* c,
                                                                  int64_t ldc, int64_t cols) {
  __m512 acc[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b = _mm512_loadu_ps(panel + k * kPanel);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k]), b, acc[r]);
  }
  const auto mask = static_cast<__mmask16>((1u << cols) - 1);  // lanes past `cols` are left alone
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* out = c + r * ldc;
    const __m512 v = accumulate ? _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(mask, out)) : acc[r];
    _mm512_mask_storeu_ps(out, mask, v);
  }
}

static void packed_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* panels,
                        bool accumulate, float* c, int64_t ldc) {
  using Kernel = void (*)(int64_t, const float*, int64_t, const float*, bool, float*, int64_t, int64_t);
  static constexpr Kernel avx2[] = {nullptr,          panel_kernel<1>, panel_kernel<2>, panel_kernel<3>,
                                    panel_kernel<4>, panel_kernel<5>, panel_kernel<6>};
  static constexpr Kernel avx512[] = {nullptr,
                                      panel_kernel_avx512<1>,
                                      panel_kernel_avx512<2>,
                                      panel_kernel_avx512<3>,
                                      panel_kernel_avx512<4>,
                                      panel_kernel_avx512<5>,
                                      panel_kernel_avx512<6>,
                                      panel_kernel_avx512<7>,
                                      panel_kernel_avx512<8>};
  const bool wide = cpu_has_avx512f();
  const Kernel* kernels = wide ? avx512 : avx2;
  const int64_t block = wide ? 8 : 6;
  for (int64_t j = 0; j < N; j += kPanel) {
    const float* panel = panels + (j / kPanel) * K * kPanel;
    const int64_t cols = std::min(kPanel, N - j);
    for (int64_t i = 0; i < M; i += block) {
      const int64_t rows = std::min<int64_t>(block, M - i);
      kernels[rows](K, a + i * lda, lda, panel, accumulate, c + i * ldc + j, ldc, cols);
    }
  }
}
#endif

template <typename T>
void StepGemm<T>::operator()(int64_t M, const T* a, int64_t lda, bool accumulate, T* c, int64_t ldc) const {
#ifdef DISTML_RNN_AVX2_GEMM
  if constexpr (std::is_same_v<T, float>) {
    if (panels && M > 0) return packed_gemm(M, N, K, a, lda, panels, accumulate, c, ldc);
  }
#endif
  gemm<T>(false, false, M, N, K, a, lda, b, ldb, accumulate ? T(1) : T(0), c, ldc);
}

// B (K, N) row-major with leading dimension ldb; packed into scratch slot `slot` where the kernel applies.
template <typename T>
static StepGemm<T> step_gemm(const T* b, int64_t K, int64_t N, int64_t ldb, int slot) {
  StepGemm<T> op;
  op.b = b, op.K = K, op.N = N, op.ldb = ldb;
#ifdef DISTML_RNN_AVX2_GEMM
  if constexpr (std::is_same_v<T, float>) {
    if (cpu_has_avx2_fma() && K > 0) {
      const int64_t count = (N + kPanel - 1) / kPanel;
      float* panels = scratch<float>(slot, count * K * kPanel);
      for (int64_t p = 0; p < count; ++p) {
        const int64_t j0 = p * kPanel, cols = std::min(kPanel, N - j0);
        float* panel = panels + p * K * kPanel;
        for (int64_t k = 0; k < K; ++k) {
          for (int64_t j = 0; j < cols; ++j) panel[k * kPanel + j] = b[k * ldb + j0 + j];
          for (int64_t j = cols; j < kPanel; ++j) panel[k * kPanel + j] = 0.0f;
        }
      }
      op.panels = panels;
    }
  }
#endif
  return op;
}


// One sequence's step. g (gate_size) holds W_ih x and becomes the gates, u = W_hh h; bx, bh the biases.
template <typename T>
DISTML_VECTOR_CLONES static void simple_row(bool use_tanh, int64_t H, T* g, const T* u, const T* bx, const T* bh, T* state, T* out) {
  if (use_tanh) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) g[j] = tanh_of(g[j] + bx[j] + u[j] + bh[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) g[j] = std::max(g[j] + bx[j] + u[j] + bh[j], T(0));
  }
  std::copy(g, g + H, state);
  std::copy(g, g + H, out);
}

// c (the running cell) becomes c', c_prev and tanh_c save c and tanh(c'), h = o * tanh(c').
template <typename T>
DISTML_VECTOR_CLONES static void lstm_row(int64_t H, T* g, const T* u, const T* bx, const T* bh, T* c, T* c_prev, T* tanh_c, T* h) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T i = sigmoid(g[j] + bx[j] + u[j] + bh[j]);
    T f = sigmoid(g[H + j] + bx[H + j] + u[H + j] + bh[H + j]);
    T cand = tanh_of(g[2 * H + j] + bx[2 * H + j] + u[2 * H + j] + bh[2 * H + j]);
    T o = sigmoid(g[3 * H + j] + bx[3 * H + j] + u[3 * H + j] + bh[3 * H + j]);
    g[j] = i, g[H + j] = f, g[2 * H + j] = cand, g[3 * H + j] = o;
    T cell = f * c[j] + i * cand;
    c_prev[j] = c[j];
    c[j] = cell;
    tanh_c[j] = tanh_of(cell);
    h[j] = o * tanh_c[j];
  }
}

// hn saves W_hn h + b_hn; state (h) becomes h'.
template <typename T>
DISTML_VECTOR_CLONES static void gru_row(int64_t H, T* g, const T* u, const T* bx, const T* bh, T* hn, T* state, T* out) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T r = sigmoid(g[j] + bx[j] + u[j] + bh[j]);
    T z = sigmoid(g[H + j] + bx[H + j] + u[H + j] + bh[H + j]);
    hn[j] = u[2 * H + j] + bh[2 * H + j];
    T n = tanh_of(g[2 * H + j] + bx[2 * H + j] + r * hn[j]);
    g[j] = r, g[H + j] = z, g[2 * H + j] = n;
    state[j] = out[j] = (T(1) - z) * n + z * state[j];
  }
}

// Whether the threads split the recurrence by sequence: each runs its own rows through every step.
// Only with the packed float32 kernel (a BLAS call inside a parallel region would start threads of
// its own) and without a projection (its per-step product is BLAS), for two 8-row blocks or more.
template <typename T>
static bool split_by_sequence(const RnnShape& s, int64_t batch, const StepGemm<T>& recurrent) {
  return recurrent.panels != nullptr && !s.proj && omp_get_max_threads() > 1 && batch >= 16;
}

// In a parallel region: each thread's share of the batch, in whole 8-row blocks.
static int64_t rows_per_thread(int64_t batch) {
  const int64_t blocks = (batch + 7) / 8, threads = omp_get_num_threads();
  return (blocks + threads - 1) / threads * 8;
}

// The input projection's chunk of steps (a share of L2) and the fewest rows worth chunking.
constexpr int64_t kChunkBytes = 256 * 1024, kChunkMinRows = 128;

template <typename T>
static void forward_typed(const RnnShape& s, const int64_t* batch_sizes, const T* x, const T* h0, const T* c0,
                          const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const T* w_hr, T* y, T* h_n,
                          T* c_n, const RnnSaved& saved) {
  const int64_t H = s.hidden, R = s.proj ? s.proj : H, G = gate_count(s.mode) * H, N = s.batch;
  int64_t rows;
  const std::vector<int64_t> offsets = step_offsets(s, batch_sizes, &rows);
  T* gates = static_cast<T*>(saved.gates);
  T* h_prev = static_cast<T*>(saved.h_prev);
  T* aux1 = static_cast<T*>(saved.aux1);
  T* aux2 = static_cast<T*>(saved.aux2);
  T* h_raw = static_cast<T*>(saved.h_raw);
  const std::vector<T> bx = bias_or_zeros(b_ih, G), bh = bias_or_zeros(b_hh, G);
  std::copy(h0, h0 + N * R, h_n);  // h_n and c_n hold the running state
  if (s.mode == RnnMode::lstm) std::copy(c0, c0 + N * H, c_n);
  T* w_hh_t = scratch<T>(1, R * G);  // W_hh^T: the per-step product then reads it without a transpose
  transpose(w_hh, G, R, w_hh_t);
  const StepGemm<T> recurrent = step_gemm(static_cast<const T*>(w_hh_t), R, G, G, 2);
  const bool split = split_by_sequence(s, N, recurrent);
  // Rows [lo, hi) of step k (those the step has): its recurrent product into hh, then the gates.
  auto step_rows = [&](int64_t k, int64_t lo, int64_t hi, T* hh) {
    const int64_t t = s.reverse ? s.steps - 1 - k : k, base = offsets[t];
    hi = std::min(hi, batch_sizes[t]);
    if (hi <= lo) return;
    T* hp = h_prev + (base + lo) * R;
    std::copy(h_n + lo * R, h_n + hi * R, hp);
    recurrent(hi - lo, hp, R, false, hh, G);
#pragma omp parallel for schedule(static) if (!split && (hi - lo) * G > kParallelWork)
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t at = base + row;
      T* g = gates + at * G;
      const T* u = hh + (row - lo) * G;
      T* state = h_n + row * R;
      switch (s.mode) {
        case RnnMode::tanh:
        case RnnMode::relu:
          simple_row(s.mode == RnnMode::tanh, H, g, u, bx.data(), bh.data(), state, y + at * R);
          break;
        case RnnMode::lstm:
          lstm_row(H, g, u, bx.data(), bh.data(), c_n + row * H, aux1 + at * H, aux2 + at * H,
                   s.proj ? h_raw + at * H : y + at * R);
          if (!s.proj) std::copy(y + at * R, y + at * R + H, state);
          break;
        case RnnMode::gru:
          gru_row(H, g, u, bx.data(), bh.data(), aux1 + at * H, state, y + at * R);
          break;
      }
    }
    if (s.proj) {
      gemm<T>(false, true, hi - lo, R, H, h_raw + (base + lo) * H, H, w_hr, H, T(0), y + (base + lo) * R, R);
      std::copy(y + (base + lo) * R, y + (base + hi) * R, h_n + lo * R);
    }
  };
  if (split) {
    // A sequence's steps depend on that sequence alone: each thread runs its own rows through every
    // step, with no barrier between steps. W_ih x first, for every step in one GEMM.
    gemm<T>(false, true, rows, G, s.input, x, s.input, w_ih, s.input, T(0), gates, G);
#pragma omp parallel
    {
      const int64_t share = rows_per_thread(N), lo = omp_get_thread_num() * share, hi = std::min(N, lo + share);
      T* hh = scratch<T>(0, share * G);
      for (int64_t k = 0; lo < hi && k < s.steps; ++k) step_rows(k, lo, hi, hh);
    }
    return;
  }
  // W_ih x for a few steps at a time, about kChunkBytes of gates, so the steps then read them from cache; in
  // one GEMM over every step where such a chunk would be too few rows for the GEMM to run at full rate.
  const int64_t chunk_rows = kChunkBytes / static_cast<int64_t>(sizeof(T) * G);
  const bool chunked = chunk_rows >= kChunkMinRows;
  if (!chunked) gemm<T>(false, true, rows, G, s.input, x, s.input, w_ih, s.input, T(0), gates, G);
  int64_t chunk_end = 0;  // steps before it (in processing order) have their W_ih x
  T* hh = scratch<T>(0, N * G);
  for (int64_t k = 0; k < s.steps; ++k) {
    const int64_t t = s.reverse ? s.steps - 1 - k : k, b = batch_sizes[t], base = offsets[t];
    if (chunked && k == chunk_end) {
      int64_t first = base, end = base + b;  // the chunk's rows, contiguous in either direction
      for (chunk_end = k + 1; chunk_end < s.steps && end - first < chunk_rows; ++chunk_end) {
        const int64_t u = s.reverse ? s.steps - 1 - chunk_end : chunk_end;
        first = std::min(first, offsets[u]), end = std::max(end, offsets[u] + batch_sizes[u]);
      }
      gemm<T>(false, true, end - first, G, s.input, x + first * s.input, s.input, w_ih, s.input, T(0),
              gates + first * G, G);
    }
    step_rows(k, 0, b, hh);
  }
}

// Backward of one sequence's step: d the gradient of h', d_pre that of the gate pre-activations.
template <typename T>
DISTML_VECTOR_CLONES static void simple_row_backward(bool use_tanh, int64_t H, const T* g, const T* d, T* d_pre) {
  if (use_tanh) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) d_pre[j] = d[j] * (T(1) - g[j] * g[j]);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) d_pre[j] = g[j] > T(0) ? d[j] : T(0);
  }
}

// dc: the gradient of c' in, of c out.
template <typename T>
DISTML_VECTOR_CLONES static void lstm_row_backward(int64_t H, const T* g, const T* c_prev, const T* tanh_c,
                                                   const T* d, T* dc, T* d_pre) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T i = g[j], f = g[H + j], cand = g[2 * H + j], o = g[3 * H + j];
    T dcj = dc[j] + d[j] * o * (T(1) - tanh_c[j] * tanh_c[j]);
    d_pre[j] = dcj * cand * i * (T(1) - i);
    d_pre[H + j] = dcj * c_prev[j] * f * (T(1) - f);
    d_pre[2 * H + j] = dcj * i * (T(1) - cand * cand);
    d_pre[3 * H + j] = d[j] * tanh_c[j] * o * (T(1) - o);
    dc[j] = dcj * f;
  }
}

// d_pre_h: the recurrent side's gradient (r scales W_hn h + b_hn); d_state gets h's direct path, d * z.
template <typename T>
DISTML_VECTOR_CLONES static void gru_row_backward(int64_t H, const T* g, const T* hn, const T* hp, const T* d,
                                                  T* d_pre, T* d_pre_h, T* d_state) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T r = g[j], z = g[H + j], n = g[2 * H + j];
    T dn = d[j] * (T(1) - z) * (T(1) - n * n);
    T dr = dn * hn[j] * r * (T(1) - r);
    T dz = d[j] * (hp[j] - n) * z * (T(1) - z);
    d_pre[j] = d_pre_h[j] = dr;
    d_pre[H + j] = d_pre_h[H + j] = dz;
    d_pre[2 * H + j] = dn;
    d_pre_h[2 * H + j] = dn * r;
    d_state[j] = d[j] * z;  // W_hh's part is added after
  }
}

// Column sums of a (rows, n) matrix.
template <typename T>
DISTML_VECTOR_CLONES static void column_sums(const T* a, int64_t rows, int64_t n, T* out) {
  std::fill(out, out + n, T(0));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) out[j] += a[i * n + j];
}

template <typename T>
static void backward_typed(const RnnShape& s, const int64_t* batch_sizes, const T* x, const T* w_ih, const T* w_hh,
                           const T* w_hr, const RnnSaved& saved, const T* dy, const T* dh_n, const T* dc_n, T* dx,
                           T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh, T* dw_hr) {
  const int64_t H = s.hidden, P = s.proj, R = P ? P : H, G = gate_count(s.mode) * H, N = s.batch;
  int64_t rows;
  const std::vector<int64_t> offsets = step_offsets(s, batch_sizes, &rows);
  const T* gates = static_cast<const T*>(saved.gates);
  const T* h_prev = static_cast<const T*>(saved.h_prev);
  const T* aux1 = static_cast<const T*>(saved.aux1);
  const T* aux2 = static_cast<const T*>(saved.aux2);
  const T* h_raw = static_cast<const T*>(saved.h_raw);
  // Gradients of the gate pre-activations: dg for the input side, dg_h for the recurrent side
  // (they differ only in GRU's n block, where r multiplies W_hn h + b_hn).
  T* dg = scratch<T>(0, rows * G);
  T* dgh = s.mode == RnnMode::gru ? scratch<T>(1, rows * G) : dg;
  T* dh_proj = P ? scratch<T>(2, rows * P) : nullptr;
  T* dh_raw = P ? scratch<T>(3, N * H) : nullptr;
  // dh0 and dc0 hold the running gradient of the state: rows outside a step keep theirs.
  std::copy(dh_n, dh_n + N * R, dh0);
  if (s.mode == RnnMode::lstm) std::copy(dc_n, dc_n + N * H, dc0);
  const StepGemm<T> recurrent = step_gemm(w_hh, G, R, R, 5);
  const bool split = split_by_sequence(s, N, recurrent);
  // Rows [lo, hi) of step k (those the step has): the gates' gradients, then W_hh's part of dh.
  auto step_rows = [&](int64_t k, int64_t lo, int64_t hi) {
    const int64_t t = s.reverse ? s.steps - 1 - k : k, base = offsets[t];
    hi = std::min(hi, batch_sizes[t]);
    if (hi <= lo) return;
    for (int64_t i = lo * R; i < hi * R; ++i) dh0[i] += dy[base * R + i];
    const T* dh = dh0;
    if (P) {
      std::copy(dh0 + lo * P, dh0 + hi * P, dh_proj + (base + lo) * P);
      gemm<T>(false, false, hi - lo, H, P, dh0 + lo * P, P, w_hr, H, T(0), dh_raw + lo * H, H);
      dh = dh_raw;
    }
#pragma omp parallel for schedule(static) if (!split && (hi - lo) * G > kParallelWork)
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t at = base + row;
      const T* g = gates + at * G;
      const T* d = dh + row * H;
      T* d_pre = dg + at * G;
      switch (s.mode) {
        case RnnMode::tanh:
        case RnnMode::relu:
          simple_row_backward(s.mode == RnnMode::tanh, H, g, d, d_pre);
          break;
        case RnnMode::lstm:
          lstm_row_backward(H, g, aux1 + at * H, aux2 + at * H, d, dc0 + row * H, d_pre);
          break;
        case RnnMode::gru:
          gru_row_backward(H, g, aux1 + at * H, h_prev + at * H, d, d_pre, dgh + at * G, dh0 + row * H);
          break;
      }
    }
    recurrent(hi - lo, dgh + (base + lo) * G, G, s.mode == RnnMode::gru, dh0 + lo * R, R);
  };
  if (split) {
#pragma omp parallel
    {
      const int64_t share = rows_per_thread(N), lo = omp_get_thread_num() * share, hi = std::min(N, lo + share);
      for (int64_t k = s.steps - 1; lo < hi && k >= 0; --k) step_rows(k, lo, hi);
    }
  } else {
    for (int64_t k = s.steps - 1; k >= 0; --k) step_rows(k, 0, N);
  }
  // The weight gradients as x^T dg and h_prev^T dg_h (the faster orientation for BLAS), then transposed.
  T* dw_t = scratch<T>(4, (s.input > R ? s.input : R) * G);
  gemm<T>(true, false, s.input, G, rows, x, s.input, dg, G, T(0), dw_t, G);
  transpose(dw_t, s.input, G, dw_ih);
  gemm<T>(true, false, R, G, rows, h_prev, R, dgh, G, T(0), dw_t, G);
  transpose(dw_t, R, G, dw_hh);
  if (db_ih) column_sums(dg, rows, G, db_ih);
  if (db_hh && db_ih && dgh == dg) std::copy(db_ih, db_ih + G, db_hh);  // one gradient for both sides
  else if (db_hh) column_sums(dgh, rows, G, db_hh);
  if (dx) gemm<T>(false, false, rows, s.input, G, dg, G, w_ih, s.input, T(0), dx, s.input);
  if (P) gemm<T>(true, false, P, H, rows, dh_proj, P, h_raw, H, T(0), dw_hr, H);
}

static void require_blas(const char* kernel) {
  if (!blas_ready()) throw std::runtime_error(std::string(kernel) + ": BLAS not set (distml._backend sets it)");
}

void rnn_forward(const RnnShape& s, const int64_t* batch_sizes, const void* x, const void* h0, const void* c0,
                 const void* w_ih, const void* w_hh, const void* b_ih, const void* b_hh, const void* w_hr, void* y,
                 void* h_n, void* c_n, const RnnSaved& saved, DType dtype) {
  require_blas("rnn_forward");
#define DISTML_RNN_FORWARD(T)                                                                                        \
  forward_typed(s, batch_sizes, static_cast<const T*>(x), static_cast<const T*>(h0), static_cast<const T*>(c0),     \
                static_cast<const T*>(w_ih), static_cast<const T*>(w_hh), static_cast<const T*>(b_ih),              \
                static_cast<const T*>(b_hh), static_cast<const T*>(w_hr), static_cast<T*>(y), static_cast<T*>(h_n), \
                static_cast<T*>(c_n), saved)
  switch (dtype) {
    case DType::f32: return DISTML_RNN_FORWARD(float);
    case DType::f64: return DISTML_RNN_FORWARD(double);
    default: unsupported_dtype("rnn_forward", dtype);
  }
#undef DISTML_RNN_FORWARD
}

void rnn_backward(const RnnShape& s, const int64_t* batch_sizes, const void* x, const void* w_ih, const void* w_hh,
                  const void* w_hr, const RnnSaved& saved, const void* dy, const void* dh_n, const void* dc_n,
                  void* dx, void* dh0, void* dc0, void* dw_ih, void* dw_hh, void* db_ih, void* db_hh, void* dw_hr,
                  DType dtype) {
  require_blas("rnn_backward");
#define DISTML_RNN_BACKWARD(T)                                                                                    \
  backward_typed(s, batch_sizes, static_cast<const T*>(x), static_cast<const T*>(w_ih),                         \
                 static_cast<const T*>(w_hh), static_cast<const T*>(w_hr), saved, static_cast<const T*>(dy),    \
                 static_cast<const T*>(dh_n), static_cast<const T*>(dc_n), static_cast<T*>(dx),                 \
                 static_cast<T*>(dh0), static_cast<T*>(dc0), static_cast<T*>(dw_ih), static_cast<T*>(dw_hh),    \
                 static_cast<T*>(db_ih), static_cast<T*>(db_hh), static_cast<T*>(dw_hr))
  switch (dtype) {
    case DType::f32: return DISTML_RNN_BACKWARD(float);
    case DType::f64: return DISTML_RNN_BACKWARD(double);
    default: unsupported_dtype("rnn_backward", dtype);
  }
#undef DISTML_RNN_BACKWARD
}

}  // namespace distml
