// Max and average pooling and their backwards (kernels/pool.h) on a CUDA device: one thread per
// output window, running kernels/pool_math.h's window arithmetic; the backwards scatter into a
// zeroed grad_x with atomic additions (windows overlap).
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/pool_math.h"

namespace distml::cuda {
namespace {

// Output o of the P planes of OD x OH x OW outputs: its plane and position.
struct OutputPosition {
  int64_t p, od, oh, ow;
};

__device__ OutputPosition position_of(int64_t o, const PoolGeometry& g) {
  const int64_t ow = o % g.OW, oh = o / g.OW % g.OH, od = o / (g.OW * g.OH) % g.OD, p = o / (g.OW * g.OH * g.OD);
  return {p, od, oh, ow};
}

template <typename T>
void max_pool_typed(const void* x_data, void* out_data, int64_t* indices, const PoolGeometry& g, Stream stream) {
  const T* x = static_cast<const T*>(x_data);
  T* out = static_cast<T*>(out_data);
  launch_each(g.P * g.OD * g.OH * g.OW, stream, [=] __device__(int64_t o) {
    const OutputPosition at = position_of(o, g);
    T best;
    int64_t best_index;
    pool_math::window_max(x + at.p * g.D * g.H * g.W, g, at.od, at.oh, at.ow, best, best_index);
    out[o] = best;
    indices[o] = best_index;
  });
}

template <typename T>
void max_pool_backward_typed(const void* grad_data, const int64_t* indices, void* grad_x_data, int64_t P,
                             int64_t in_size, int64_t out_size, Stream stream) {
  const T* grad = static_cast<const T*>(grad_data);
  T* grad_x = static_cast<T*>(grad_x_data);
  check(cudaMemsetAsync(grad_x, 0, sizeof(T) * P * in_size, stream), "max_pool_backward");
  launch_each(P * out_size, stream, [=] __device__(int64_t o) {
    atomic_add(grad_x + o / out_size * in_size + indices[o], grad[o]);
  });
}

template <typename T>
void avg_pool_typed(const void* x_data, void* out_data, const PoolGeometry& g, bool count_include_pad,
                    int64_t divisor_override, Stream stream) {
  const T* x = static_cast<const T*>(x_data);
  T* out = static_cast<T*>(out_data);
  launch_each(g.P * g.OD * g.OH * g.OW, stream, [=] __device__(int64_t o) {
    const OutputPosition at = position_of(o, g);
    const pool_math::AvgWindow w = pool_math::avg_window(g, at.od, at.oh, at.ow, count_include_pad, divisor_override);
    out[o] = pool_math::window_average(x + at.p * g.D * g.H * g.W, g, w.d, w.h, w.w, w.divisor);
  });
}

template <typename T>
void avg_pool_backward_typed(const void* grad_data, void* grad_x_data, const PoolGeometry& g, bool count_include_pad,
                             int64_t divisor_override, Stream stream) {
  const T* grad = static_cast<const T*>(grad_data);
  T* grad_x = static_cast<T*>(grad_x_data);
  check(cudaMemsetAsync(grad_x, 0, sizeof(T) * g.P * g.D * g.H * g.W, stream), "avg_pool_backward");
  launch_each(g.P * g.OD * g.OH * g.OW, stream, [=] __device__(int64_t o) {
    const OutputPosition at = position_of(o, g);
    const pool_math::AvgWindow w = pool_math::avg_window(g, at.od, at.oh, at.ow, count_include_pad, divisor_override);
    const T share = pool_math::window_share(grad[o], w.divisor);
    T* plane = grad_x + at.p * g.D * g.H * g.W;
    pool_math::for_each_in_window(g, w.d, w.h, w.w, [&](int64_t q) { atomic_add(plane + q, share); });
  });
}

}  // namespace

void max_pool(const void* x, void* out, int64_t* indices, const PoolGeometry& g, DType dtype, Stream stream) {
  if (g.P * g.OD * g.OH * g.OW == 0) return;
  launch_float("max_pool", dtype, out, [&](auto type) { max_pool_typed<decltype(type)>(x, out, indices, g, stream); });
}

void max_pool_backward(const void* grad_out, const int64_t* indices, void* grad_x, int64_t P, int64_t in_size,
                       int64_t out_size, DType dtype, Stream stream) {
  if (P * in_size == 0) return;
  launch_float("max_pool_backward", dtype, grad_x, [&](auto type) {
    max_pool_backward_typed<decltype(type)>(grad_out, indices, grad_x, P, in_size, out_size, stream);
  });
}

void avg_pool(const void* x, void* out, const PoolGeometry& g, bool count_include_pad, int64_t divisor_override,
              DType dtype, Stream stream) {
  if (g.P * g.OD * g.OH * g.OW == 0) return;
  launch_float("avg_pool", dtype, out, [&](auto type) {
    avg_pool_typed<decltype(type)>(x, out, g, count_include_pad, divisor_override, stream);
  });
}

void avg_pool_backward(const void* grad_out, void* grad_x, const PoolGeometry& g, bool count_include_pad,
                       int64_t divisor_override, DType dtype, Stream stream) {
  if (g.P * g.D * g.H * g.W == 0) return;
  launch_float("avg_pool_backward", dtype, grad_x, [&](auto type) {
    avg_pool_backward_typed<decltype(type)>(grad_out, grad_x, g, count_include_pad, divisor_override, stream);
  });
}

}  // namespace distml::cuda
