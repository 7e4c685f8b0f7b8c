#include "blas_threads.h"

#include <omp.h>

#include <thread>
#include <vector>

namespace distml {

// The jobs of one OpenBLAS call wait for each other (a GEMM's threads share packed panels), so they
// must all run at once: on a team of `jobs` OpenMP threads where the kernels may use that many,
// else on plain threads (inside a parallel region a nested team would have one thread; a forked
// child is held to one OpenMP thread, since GNU OpenMP hangs there). Always synchronous, which an
// asynchronous call (sync == 0) may be too.
extern "C" void blas_threads_callback(int /*sync*/, void (*dojob)(int, void*, int), int jobs, size_t jobdata_size,
                                      void* jobdata, int dojob_data) {
  char* data = static_cast<char*>(jobdata);
  if (!omp_in_parallel() && jobs <= omp_get_max_threads()) {
#pragma omp parallel for num_threads(jobs) schedule(static, 1)
    for (int i = 0; i < jobs; ++i) dojob(i, data + i * jobdata_size, dojob_data);
    return;
  }
  std::vector<std::thread> others;
  for (int i = 1; i < jobs; ++i) others.emplace_back(dojob, i, data + i * jobdata_size, dojob_data);
  dojob(0, data, dojob_data);
  for (auto& t : others) t.join();
}

}  // namespace distml
