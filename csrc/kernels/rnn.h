// One recurrent layer in one direction (RNN tanh/relu, LSTM with optional projection, GRU), forward and
// backward over a whole sequence: the input projection and the weight gradients are single GEMMs over
// every step, the recurrence is one GEMM per step plus a fused gate loop.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

enum class RnnMode : int { tanh = 0, relu = 1, lstm = 2, gru = 3 };

// The Fortran-convention GEMMs (column-major, every argument by pointer) that scipy.linalg.cython_blas
// exports; set once from Python before any rnn call.
using SgemmFn = void (*)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*, float*, float*, int*);
using DgemmFn = void (*)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*, double*, double*,
                         int*);
void set_blas(SgemmFn sgemm, DgemmFn dgemm);
bool blas_ready();

// Sizes: `steps` time steps over packed rows, step t holding the first batch_sizes[t] sequences
// (non-increasing, batch_sizes[0] = batch), rows = sum(batch_sizes); gate_size = gates * hidden with
// gates 1 (tanh, relu), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n); the state h has `state` = proj or hidden
// features. reverse runs the steps from the last to the first.
struct RnnShape {
  RnnMode mode;
  int64_t steps, batch, input, hidden, proj;  // proj 0: no projection (LSTM only)
  bool reverse;
};

// What forward saves for backward, each (rows, ...): gates (gate_size) after their nonlinearity;
// h_prev (state) the state each step started from; aux1 (hidden) LSTM c_prev or GRU W_hn h + b_hn;
// aux2 (hidden) LSTM tanh(c); h_raw (hidden) LSTM o * tanh(c) before the projection (proj > 0 only).
// Buffers a mode does not use may be null.
struct RnnSaved {
  void *gates, *h_prev, *aux1, *aux2, *h_raw;
};

// x (rows, input), h0 (batch, state), c0 (batch, hidden; LSTM), w_ih (gate_size, input),
// w_hh (gate_size, state), b_ih / b_hh (gate_size; null: no bias), w_hr (proj, hidden; proj > 0)
// -> y (rows, state), h_n (batch, state), c_n (batch, hidden; LSTM) and `saved`.
void rnn_forward(const RnnShape& s, const int64_t* batch_sizes, const void* x, const void* h0, const void* c0,
                 const void* w_ih, const void* w_hh, const void* b_ih, const void* b_hh, const void* w_hr, void* y,
                 void* h_n, void* c_n, const RnnSaved& saved, DType dtype);

// Gradients from dy (rows, state), dh_n (batch, state), dc_n (batch, hidden; LSTM) and forward's
// `saved`: dx (null: not wanted), dh0, dc0 (LSTM), dw_ih, dw_hh, db_ih / db_hh (null without bias),
// dw_hr (proj > 0). Every output is overwritten.
void rnn_backward(const RnnShape& s, const int64_t* batch_sizes, const void* x, const void* w_ih, const void* w_hh,
                  const void* w_hr, const RnnSaved& saved, const void* dy, const void* dh_n, const void* dc_n,
                  void* dx, void* dh0, void* dc0, void* dw_ih, void* dw_hh, void* db_ih, void* db_hh, void* dw_hr,
                  DType dtype);

}  // namespace distml
