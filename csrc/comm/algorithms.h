// The collective algorithms over a Transport. Every collective starts with an agreement check:
// the ranks' Signatures are posted in the shared arena, or without one combined by recursive
// doubling (fused with the data for small allreduces). So a rank that called something else,
// or with another size or dtype, makes every rank raise instead of hanging or reducing garbage.
//
// algorithms.cpp picks the algorithm for each call; each algorithm is one file: agreement,
// recursive_doubling, ring, tree (exchanges rooted at one rank), shared_memory (the arena's
// allreduce) and point_to_point (send, recv).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "comm/reduce.h"
#include "comm/shared_arena.h"
#include "comm/transport.h"
#include "dtype.h"

namespace distml {

enum class Collective : int64_t {
  all_reduce, broadcast, all_gather, reduce_scatter, reduce, gather, scatter, barrier, send
};

// shared_memory: through the group's SharedArena, when every rank is on one host; hierarchical:
// within each host, across hosts, within each host again (hierarchical.h). Python gets it as
// distml._C.Algo, by DISTML_ALLREDUCE_ALGO's names: auto, ring, rd, shm, hier (bindings.cpp).
enum class Algo : int { automatic = 0, ring = 1, recursive_doubling = 2, shared_memory = 3, hierarchical = 4 };

struct Tuning {
  Algo allreduce = Algo::automatic;
  size_t rd_max_bytes = 32 << 10;     // automatic allreduce: recursive doubling up to this size
  size_t chunk_bytes = 256 << 10;     // ring pipeline chunk (smaller: more bytes go through
                                      // the eager first fragment of each rendezvous, copied twice)
  int window = 4;                     // ring: receives in flight
  size_t tree_max_bytes = 256 << 10;  // broadcast: binomial tree up to this, scatter+allgather above
  size_t shared_one_round_bytes = 32 << 10;  // shared-memory allreduce: every rank reduces the whole
                                             // buffer up to this; above, each reduces a segment
  size_t shared_chunk_bytes = 256 << 10;     // ... of chunks this big (at most the arena's half)
  size_t hierarchical_chunk_bytes = 1 << 20;  // hierarchical allreduce: the arena's rounds within a
                                              // host (at most its half; fewer syncs than 256 KiB)
};

struct Hierarchy;

// Memory reused across calls (only one collective runs at a time): private scratch buffers, and
// the arena shared with the other ranks when they all live on this host (else null). With an
// arena, every collective's agreement check goes through it. hierarchy: the group's sub-groups
// within and across hosts, when it spans hosts with several ranks on each (else null).
struct Scratch {
  std::vector<char> a, b, work;
  std::unique_ptr<SharedArena> shared;
  std::shared_ptr<Hierarchy> hierarchy;
};

// The allreduce algorithm for a buffer of `bytes` (tune.allreduce unless that is automatic).
Algo choose_allreduce(const Tuning& tune, size_t bytes, bool shared_memory, bool hierarchical);
void allreduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype,
               ReduceOp op);
void broadcast(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype,
               int root);
// out holds size() * count elements; in may alias out's own slot.
void allgather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count,
               DType dtype);
// in holds size() * count elements (left unchanged); out receives this rank's reduced slot. When out
// is in's own slot, the ring runs in in itself (no copy) and in's other slots end as partial results.
void reduce_scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out,
                    size_t count, DType dtype, ReduceOp op);
// The result lands in buf on root only; other ranks' buf is left unchanged.
void reduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype,
            ReduceOp op, int root);
// out (size() * count elements) is used on root only.
void gather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root);
// in (size() * count elements) is used on root only.
void scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root);
void barrier(Transport& t, Scratch& s, const Tuning& tune);
void send(Transport& t, const void* buf, size_t count, DType dtype, int dst, int tag);
// src may be MPI_ANY_SOURCE; returns the rank the message came from.
int recv(Transport& t, void* buf, size_t count, DType dtype, int src, int tag);

}  // namespace distml
