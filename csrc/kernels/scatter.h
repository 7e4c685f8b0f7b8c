#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// target[index[i]] += values[i] for i < count; repeated indices accumulate.
void scatter_add(void* target, int64_t target_size, const int64_t* index, const void* values, int64_t count,
                 DType dtype);

}  // namespace distml
