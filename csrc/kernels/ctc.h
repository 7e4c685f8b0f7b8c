#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// Connectionist temporal classification on log_probs (T, N, C), targets (N, S) padded with
// target_lengths[n] <= S labels each, input_lengths[n] <= T steps each. The extended labels
// of sample n are (blank, y1, blank, y2, ..., blank), L = 2 * target_lengths[n] + 1 of them.
//
// ctc_loss_forward: nll[n] = -log p(targets[n] | log_probs[:, n]) by the forward recursion in
//   log space; log_alpha (N, T, 2S + 1), always float64, keeps the forward variables for the
//   backward (-inf where unused). An empty input gives 0 for an empty target, +inf otherwise.
// ctc_loss_backward: grad (T, N, C) = grad_nll[n] * (exp(lp) - exp(log sum_s alpha beta + nll - lp)),
//   PyTorch's gradient (the one through a log_softmax that produced log_probs); zero past each
//   input length, and zero for a whole sample when zero_infinity and its nll is infinite.
// Targets outside [0, C) throw std::out_of_range. Parallel over n.
void ctc_loss_forward(const void* log_probs, const int64_t* targets, const int64_t* input_lengths,
                      const int64_t* target_lengths, void* nll, double* log_alpha, int64_t T, int64_t N, int64_t C,
                      int64_t S, int64_t blank, DType dtype);
void ctc_loss_backward(const void* grad_nll, const void* log_probs, const int64_t* targets,
                       const int64_t* input_lengths, const int64_t* target_lengths, const void* nll,
                       const double* log_alpha, void* grad, int64_t T, int64_t N, int64_t C, int64_t S, int64_t blank,
                       bool zero_infinity, DType dtype);

}  // namespace distml
