// dst[i] = dst[i] (op) src[i] (comm/reduce.h's reduce_into) on a CUDA device, one thread per element,
// with kernels/reduce_math.h's arithmetic. float16 and bfloat16 are computed in float32 and rounded to
// nearest even, as on the host.
#include <cuda_fp16.h>

#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include "kernels/bfloat16.h"
#include "kernels/reduce_math.h"

namespace distml::cuda {
namespace {

// How an element is read into the type the arithmetic runs in, and written back.
template <typename T>
struct Same {
  __device__ static T load(T v) { return v; }
  __device__ static T store(T v) { return v; }
};
struct Half {
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half_rn(v); }
};
struct BFloat16 {
  __device__ static float load(uint16_t v) { return bf16_to_float(v); }
  __device__ static uint16_t store(float v) { return float_to_bf16(v); }
};

template <ReduceOp Op, typename Element, typename Convert>
void combine_into(void* dst, const void* src, int64_t n, Stream stream) {
  Element* d = static_cast<Element*>(dst);
  const Element* s = static_cast<const Element*>(src);
  launch_each(n, stream, [=] __device__(int64_t i) {
    d[i] = Convert::store(reduce_math::Combine<Op>{}(Convert::load(d[i]), Convert::load(s[i])));
  });
}

template <ReduceOp Op>
void reduce_typed(void* dst, const void* src, int64_t n, DType dtype, Stream stream) {
  switch (dtype) {
    case DType::f16: return combine_into<Op, __half, Half>(dst, src, n, stream);
    case DType::bf16: return combine_into<Op, uint16_t, BFloat16>(dst, src, n, stream);
    case DType::f32: return combine_into<Op, float, Same<float>>(dst, src, n, stream);
    case DType::f64: return combine_into<Op, double, Same<double>>(dst, src, n, stream);
    case DType::i8: return combine_into<Op, int8_t, Same<int8_t>>(dst, src, n, stream);
    case DType::i16: return combine_into<Op, int16_t, Same<int16_t>>(dst, src, n, stream);
    case DType::i32: return combine_into<Op, int32_t, Same<int32_t>>(dst, src, n, stream);
    case DType::i64: return combine_into<Op, int64_t, Same<int64_t>>(dst, src, n, stream);
    case DType::u8: return combine_into<Op, uint8_t, Same<uint8_t>>(dst, src, n, stream);
    default: unsupported_dtype("reduce", dtype);
  }
}

}  // namespace

void reduce_into(void* dst, const void* src, size_t count, DType dtype, ReduceOp op, Stream stream) {
  reduce_math::require_elementwise(op);
  if (count == 0) return;
  DeviceGuard guard(dst, "reduce_into");
  const int64_t n = static_cast<int64_t>(count);
  switch (op) {
    case ReduceOp::sum: reduce_typed<ReduceOp::sum>(dst, src, n, dtype, stream); break;
    case ReduceOp::prod: reduce_typed<ReduceOp::prod>(dst, src, n, dtype, stream); break;
    case ReduceOp::max: reduce_typed<ReduceOp::max>(dst, src, n, dtype, stream); break;
    case ReduceOp::min: reduce_typed<ReduceOp::min>(dst, src, n, dtype, stream); break;
    case ReduceOp::avg: break;  // rejected above
  }
  check(cudaGetLastError(), "reduce_into");
}

}  // namespace distml::cuda
