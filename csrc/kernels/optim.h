// Fused optimizer updates: one call updates every tensor of a parameter group in place.
// Tensor t has sizes[t] elements at params[t], grads[t] and its state buffers (all one dtype,
// f32 or f64). The arithmetic follows torch.optim's single-tensor code operation for operation,
// so results agree with PyTorch to rounding.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

struct SgdOptions {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
};
// momentum_buffers is used when momentum != 0; fresh[t] != 0 starts buffer t at the gradient.
void sgd_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
              void* const* momentum_buffers, const uint8_t* fresh, DType dtype, const SgdOptions& options);

struct AdamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled_weight_decay;
};
// steps[t] is tensor t's step count after this step (1 on the first); max_exp_avg_sqs is used with amsgrad.
void adam_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* exp_avgs,
               void* const* exp_avg_sqs, void* const* max_exp_avg_sqs, const double* steps, DType dtype,
               const AdamOptions& options);

struct RmspropOptions {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
// grad_avgs is used when centered, momentum_buffers when momentum > 0.
void rmsprop_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                  void* const* square_avgs, void* const* grad_avgs, void* const* momentum_buffers, DType dtype,
                  const RmspropOptions& options);

struct AdagradOptions {
  double lr, lr_decay, weight_decay, eps;
  bool maximize;
};
void adagrad_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* sums,
                  const double* steps, DType dtype, const AdagradOptions& options);

struct AdadeltaOptions {
  double lr, rho, eps, weight_decay;
  bool maximize;
};
void adadelta_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                   void* const* square_avgs, void* const* acc_deltas, DType dtype, const AdadeltaOptions& options);

}  // namespace distml
