// The agreement check every collective starts with. Each rank describes its call in a Signature
// (which collective, dtype, count, op, root); the ranks compare them before any data moves, so a
// rank that called something else, or with another size or dtype, makes every rank raise the
// same error instead of hanging or reducing garbage. With a shared arena the Signatures are
// posted there; without one they are combined by recursive doubling (recursive_doubling.h).
#pragma once
#include <cstdint>
#include <string>

#include "comm/algorithms.h"

namespace distml {

constexpr int kTag = 0;  // collectives; send/recv use 1 + 2 * tag and 2 + 2 * tag

Signature signature(Collective c, DType dtype, size_t count, ReduceOp op = ReduceOp::sum, int root = 0);
// FNV-1a over the fields: ranks compare hashes, and exchange whole Signatures only to word the error.
uint64_t signature_hash(const Signature& s);
// How error messages name a call, e.g. "all_reduce(float32[10], op=sum)".
std::string describe(const Signature& s);

// Raise on every rank when the ranks' Signatures differ.
void check_agreement(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig);
// The sync after a round whose Signature was posted in the arena: raise unless every rank posted the same.
void sync_and_agree(Transport& t, SharedArena& arena, uint64_t round);
// Without an arena: every rank learns every Signature over MPI, then raises the same message.
[[noreturn]] void raise_mismatch(Transport& t, const Signature& mine);

}  // namespace distml
