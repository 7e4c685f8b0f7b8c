// DISTML_HD marks arithmetic shared by a CPU kernel (kernels/*.cpp) and its CUDA twin (cuda/*.cu):
// nvcc compiles it for both sides, the host compiler as a plain inline function, so the host build
// (and its tests) runs the same code the GPU does.
#pragma once

#ifdef __CUDACC__
#define DISTML_HD __host__ __device__ __forceinline__
#else
#define DISTML_HD inline
#endif

namespace distml {

// std::max's choice (a NaN in `b` never wins), usable on the device.
template <typename T>
DISTML_HD T max_of(T a, T b) {
  return a < b ? b : a;
}

template <typename T>
DISTML_HD T min_of(T a, T b) {
  return b < a ? b : a;
}

}  // namespace distml
