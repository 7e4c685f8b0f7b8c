// Recursive doubling over all ranks: log2(p) rounds of pairwise exchanges, for latency-bound
// allreduces and for the agreement check without a shared arena (agreement.h).
#pragma once
#include "comm/algorithms.h"

namespace distml {

// Combines the ranks' Signatures, and when `payload` is given allreduces its count elements on
// the way; the result is written back only if every rank agreed. Returns whether they agreed.
bool agree_and_reduce(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig, void* payload,
                      size_t count, DType dtype, ReduceOp op);

}  // namespace distml
