// OpenBLAS's parallel jobs run on distml's OpenMP threads (openblas_set_threads_callback_function,
// OpenBLAS >= 0.3.27), so that one pool of threads serves the BLAS calls and the kernels. OpenBLAS's
// own pool spins for about 2^28 cycles after each call: on the cores the OpenMP kernels needed next.
#pragma once
#include <cstddef>

namespace distml {

// OpenBLAS's openblas_threads_callback: runs dojob(i, jobdata + i * jobdata_size, dojob_data) for
// every job i at once, and returns when all are done.
extern "C" void blas_threads_callback(int sync, void (*dojob)(int, void*, int), int jobs, size_t jobdata_size,
                                      void* jobdata, int dojob_data);

}  // namespace distml
