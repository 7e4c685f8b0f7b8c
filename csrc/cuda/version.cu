#include <cuda_runtime_api.h>

#include "cuda/kernels.h"

namespace distml::cuda {

int compiled_runtime_version() { return CUDART_VERSION; }

}  // namespace distml::cuda
