#include "kernels/optim.h"

#include "kernels/optim_math.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace distml {
namespace {

// Below this many elements in all, threads cost more than they save.
constexpr int64_t kParallelGrain = 1 << 15;

// Calls body(t, begin, end) on this thread's share of every tensor, with one parallel region for the group.
template <typename Body>
void for_each_chunk(int64_t count, const int64_t* sizes, Body body) {
  int64_t total = 0;
  for (int64_t t = 0; t < count; ++t) total += sizes[t];
#pragma omp parallel if (total > kParallelGrain)
  {
    const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
    for (int64_t t = 0; t < count; ++t) {
      const int64_t chunk = (sizes[t] + threads - 1) / threads;
      const int64_t begin = std::min(sizes[t], id * chunk), end = std::min(sizes[t], begin + chunk);
      if (begin < end) body(t, begin, end);
    }
  }
}

// Scalars are rounded to T once, as PyTorch does when it applies a Python float to a tensor.
// Calls body(std::true_type) or body(std::false_type), so that `if constexpr` on the flag compiles
// a branch-free (vectorizable) inner loop for each value of an option. The innermost lambda captures
// by value: by reference, GCC must assume stores through the tensors may change the scalars.
template <typename Body>
void with_flag(bool flag, Body body) {
  if (flag) body(std::true_type{});
  else body(std::false_type{});
}

template <typename T>
void sgd_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* bufs,
               const uint8_t* fresh, const SgdOptions& o) {
  const optim_math::SgdScalars<T> scalars(o);
  for_each_chunk(count, sizes, [&](int64_t t, int64_t begin, int64_t end) {
    T* __restrict__ p = static_cast<T*>(params[t]);
    const T* __restrict__ g = static_cast<const T*>(grads[t]);
    T* __restrict__ buf = static_cast<T*>(bufs[t]);
    with_flag(o.maximize, [&](auto maximize) {
    with_flag(o.weight_decay != 0, [&](auto use_decay) {
    with_flag(o.momentum != 0, [&](auto use_momentum) {
    with_flag(o.nesterov, [&](auto nesterov) {
      const bool first = use_momentum && fresh[t];
      const optim_math::SgdScalars<T> s = scalars;
      for (int64_t j = begin; j < end; ++j)
        optim_math::sgd_element(p, g, buf, j, first, s, maximize, use_decay, use_momentum, nesterov);
    }); }); }); });
  });
}

template <typename T>
void adam_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* avgs,
                void* const* sqs, void* const* max_sqs, const double* steps, const AdamOptions& o) {
  const optim_math::AdamScalars<T> scalars(o);
  for_each_chunk(count, sizes, [&](int64_t t, int64_t begin, int64_t end) {
    const optim_math::AdamStepScalars<T> step(o, steps[t]);
    T* __restrict__ p = static_cast<T*>(params[t]);
    const T* __restrict__ g = static_cast<const T*>(grads[t]);
    T* __restrict__ m = static_cast<T*>(avgs[t]);
    T* __restrict__ v = static_cast<T*>(sqs[t]);
    T* __restrict__ v_max = static_cast<T*>(max_sqs[t]);
    with_flag(o.maximize, [&](auto maximize) {
    with_flag(o.weight_decay != 0, [&](auto use_decay) {
    with_flag(o.decoupled_weight_decay, [&](auto decoupled) {
    with_flag(o.amsgrad, [&](auto amsgrad) {
    with_flag(scalars.one_minus_beta1 < T(0.5), [=](auto from_start) {
      for (int64_t j = begin; j < end; ++j)
        optim_math::adam_element(p, g, m, v, v_max, j, scalars, step, maximize, use_decay, decoupled, amsgrad,
                                 from_start);
    }); }); }); }); });
  });
}

template <typename T>
void rmsprop_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                   void* const* sqs, void* const* grad_avgs, void* const* bufs, const RmspropOptions& o) {
  const T alpha = T(o.alpha), one_minus_alpha = T(1 - o.alpha), eps = T(o.eps), decay = T(o.weight_decay);
  const T neg_lr = T(-o.lr), momentum = T(o.momentum);
  for_each_chunk(count, sizes, [&](int64_t t, int64_t begin, int64_t end) {
    T* __restrict__ p = static_cast<T*>(params[t]);
    const T* __restrict__ g = static_cast<const T*>(grads[t]);
    T* __restrict__ sq = static_cast<T*>(sqs[t]);
    T* __restrict__ ga = static_cast<T*>(grad_avgs[t]);
    T* __restrict__ buf = static_cast<T*>(bufs[t]);
    with_flag(o.maximize, [&](auto maximize) {
    with_flag(o.weight_decay != 0, [&](auto use_decay) {
    with_flag(o.centered, [&](auto centered) {
    with_flag(o.momentum > 0, [&](auto use_momentum) {
    with_flag(one_minus_alpha < T(0.5), [=](auto from_start) {
      for (int64_t j = begin; j < end; ++j) {
        T d = maximize ? -g[j] : g[j];
        if constexpr (use_decay) d = d + decay * p[j];
        sq[j] = sq[j] * alpha + one_minus_alpha * d * d;
        T avg;
        if constexpr (centered) {
          ga[j] = optim_math::lerp(ga[j], d, one_minus_alpha, from_start);
          avg = std::sqrt(sq[j] + T(-1) * ga[j] * ga[j]);
        } else {
          avg = std::sqrt(sq[j]);
        }
        avg = avg + eps;
        if constexpr (use_momentum) {
          buf[j] = buf[j] * momentum + d / avg;
          p[j] = p[j] + neg_lr * buf[j];
        } else {
          p[j] = p[j] + neg_lr * d / avg;
        }
      }
    }); }); }); }); });
  });
}

template <typename T>
void adagrad_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                   void* const* sums, const double* steps, const AdagradOptions& o) {
  const T eps = T(o.eps), decay = T(o.weight_decay);
  const bool use_decay = o.weight_decay != 0;
  for_each_chunk(count, sizes, [&](int64_t t, int64_t begin, int64_t end) {
    const T neg_clr = T(-(o.lr / (1 + (steps[t] - 1) * o.lr_decay)));
    T* p = static_cast<T*>(params[t]);
    const T* g = static_cast<const T*>(grads[t]);
    T* sum = static_cast<T*>(sums[t]);
    for (int64_t j = begin; j < end; ++j) {
      T d = o.maximize ? -g[j] : g[j];
      if (use_decay) d = d + decay * p[j];
      sum[j] = sum[j] + d * d;
      p[j] = p[j] + neg_clr * d / (std::sqrt(sum[j]) + eps);
    }
  });
}

template <typename T>
void adadelta_typed(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                    void* const* sqs, void* const* accs, const AdadeltaOptions& o) {
  const T rho = T(o.rho), one_minus_rho = T(1 - o.rho), eps = T(o.eps), decay = T(o.weight_decay), neg_lr = T(-o.lr);
  const bool use_decay = o.weight_decay != 0;
  for_each_chunk(count, sizes, [&](int64_t t, int64_t begin, int64_t end) {
    T* p = static_cast<T*>(params[t]);
    const T* g = static_cast<const T*>(grads[t]);
    T* sq = static_cast<T*>(sqs[t]);
    T* acc = static_cast<T*>(accs[t]);
    for (int64_t j = begin; j < end; ++j) {
      T d = o.maximize ? -g[j] : g[j];
      if (use_decay) d = d + decay * p[j];
      sq[j] = sq[j] * rho + one_minus_rho * d * d;
      const T delta = std::sqrt(acc[j] + eps) / std::sqrt(sq[j] + eps) * d;
      acc[j] = acc[j] * rho + one_minus_rho * delta * delta;
      p[j] = p[j] + neg_lr * delta;
    }
  });
}

}  // namespace

void sgd_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
              void* const* momentum_buffers, const uint8_t* fresh, DType dtype, const SgdOptions& options) {
  switch (dtype) {
    case DType::f32: return sgd_typed<float>(count, sizes, params, grads, momentum_buffers, fresh, options);
    case DType::f64: return sgd_typed<double>(count, sizes, params, grads, momentum_buffers, fresh, options);
    default: unsupported_dtype("sgd_step", dtype);
  }
}

void adam_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* exp_avgs,
               void* const* exp_avg_sqs, void* const* max_exp_avg_sqs, const double* steps, DType dtype,
               const AdamOptions& options) {
  switch (dtype) {
    case DType::f32:
      return adam_typed<float>(count, sizes, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, options);
    case DType::f64:
      return adam_typed<double>(count, sizes, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, options);
    default: unsupported_dtype("adam_step", dtype);
  }
}

void rmsprop_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                  void* const* square_avgs, void* const* grad_avgs, void* const* momentum_buffers, DType dtype,
                  const RmspropOptions& options) {
  switch (dtype) {
    case DType::f32:
      return rmsprop_typed<float>(count, sizes, params, grads, square_avgs, grad_avgs, momentum_buffers, options);
    case DType::f64:
      return rmsprop_typed<double>(count, sizes, params, grads, square_avgs, grad_avgs, momentum_buffers, options);
    default: unsupported_dtype("rmsprop_step", dtype);
  }
}

void adagrad_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads, void* const* sums,
                  const double* steps, DType dtype, const AdagradOptions& options) {
  switch (dtype) {
    case DType::f32: return adagrad_typed<float>(count, sizes, params, grads, sums, steps, options);
    case DType::f64: return adagrad_typed<double>(count, sizes, params, grads, sums, steps, options);
    default: unsupported_dtype("adagrad_step", dtype);
  }
}

void adadelta_step(int64_t count, const int64_t* sizes, void* const* params, const void* const* grads,
                   void* const* square_avgs, void* const* acc_deltas, DType dtype, const AdadeltaOptions& options) {
  switch (dtype) {
    case DType::f32: return adadelta_typed<float>(count, sizes, params, grads, square_avgs, acc_deltas, options);
    case DType::f64: return adadelta_typed<double>(count, sizes, params, grads, square_avgs, acc_deltas, options);
    default: unsupported_dtype("adadelta_step", dtype);
  }
}

}  // namespace distml
