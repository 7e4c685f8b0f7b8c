// Collectives through the group's SharedArena (shared_arena.h), when every rank lives on one
// host: data moves with plain loads and stores, and ranks meet at the arena's syncs.
#pragma once
#include "comm/algorithms.h"

namespace distml {

// Allreduce of buf (count elements) in place; also checks sig against the other ranks'.
void shared_allreduce(Transport& t, SharedArena& arena, const Tuning& tune, const Signature& sig, char* buf,
                      size_t count, DType dtype, ReduceOp op);

}  // namespace distml
