#include "comm/hierarchical.h"

#include <algorithm>
#include <cstring>

#include "comm/agreement.h"
#include "comm/recursive_doubling.h"
#include "comm/ring.h"

namespace distml {

namespace {

// Piece k of segment r of segs when each segment is cut into pieces of `piece` elements.
void cut(const Segments& segs, int r, size_t k, size_t piece, size_t& off, size_t& len) {
  const size_t begin = std::min(segs.len[r], k * piece), end = std::min(segs.len[r], (k + 1) * piece);
  off = segs.off[r] + begin;
  len = end - begin;
}

// Afterwards this rank's shard of buf (shards[rank]) is reduced over the arena's ranks; the
// others' shards are left as they were. Round k: each rank copies piece k of every other rank's
// shard into slot r of its half; after the sync, rank r reduces the peers' slot r into its
// shard, while its next copies go to the other half. The same arena rules as shared_memory.cpp:
// a half is written again only after a sync that every peer entered after its last reads of it.
void arena_reduce_scatter(Transport& t, SharedArena& arena, const Tuning& tune, char* buf, const Segments& shards,
                          DType dtype, ReduceOp op) {
  const int p = t.size(), me = t.rank();
  const size_t esz = dtype_size(dtype);
  const size_t slot = std::max<size_t>(1, std::min(tune.hierarchical_chunk_bytes, arena.half_bytes()) / esz / p);
  const size_t rounds = (shards.longest() + slot - 1) / slot;
  auto copy_in = [&](size_t k) {
    const uint64_t round = arena.begin_round(nullptr);
    for (int r = 0; r < p; ++r) {
      if (r == me) continue;
      size_t off, len;
      cut(shards, r, k, slot, off, len);
      std::memcpy(arena.half(me, round) + r * slot * esz, buf + off * esz, len * esz);
    }
    return round;
  };
  if (!rounds) return;
  uint64_t round = copy_in(0);
  arena.sync(t);
  for (size_t k = 0; k < rounds; ++k) {
    size_t off, len;
    cut(shards, me, k, slot, off, len);
    for (int r = 0; r < p; ++r)
      if (r != me) reduce_into(buf + off * esz, arena.half(r, round) + me * slot * esz, len, dtype, op);
    if (k + 1 < rounds) {
      round = copy_in(k + 1);
      arena.sync(t);
    }
  }
}

// Starting from each rank holding its shard, every rank ends with all of them: round k, each
// rank publishes piece k of its shard in its half, and after the sync copies the peers' out.
void arena_allgather(Transport& t, SharedArena& arena, const Tuning& tune, char* buf, const Segments& shards,
                     size_t esz) {
  const int p = t.size(), me = t.rank();
  const size_t piece = std::max<size_t>(1, std::min(tune.hierarchical_chunk_bytes, arena.half_bytes()) / esz);
  const size_t rounds = (shards.longest() + piece - 1) / piece;
  auto publish = [&](size_t k) {
    const uint64_t round = arena.begin_round(nullptr);
    size_t off, len;
    cut(shards, me, k, piece, off, len);
    std::memcpy(arena.half(me, round), buf + off * esz, len * esz);
    return round;
  };
  if (!rounds) return;
  uint64_t round = publish(0);
  for (size_t k = 0; k < rounds; ++k) {
    arena.sync(t);
    for (int r = 0; r < p; ++r) {
      if (r == me) continue;
      size_t off, len;
      cut(shards, r, k, piece, off, len);
      std::memcpy(buf + off * esz, arena.half(r, round), len * esz);
    }
    if (k + 1 < rounds) round = publish(k + 1);
  }
}

}  // namespace

std::shared_ptr<Hierarchy> Hierarchy::create(const Transport& t, const std::vector<int>& host, bool shared_memory,
                                             size_t half_bytes) {
  const int hosts = *std::max_element(host.begin(), host.end()) + 1;
  std::vector<int> per_host(hosts, 0), local_rank(host.size());
  for (size_t r = 0; r < host.size(); ++r) local_rank[r] = per_host[host[r]]++;
  const bool even = std::all_of(per_host.begin(), per_host.end(), [&](int n) { return n == per_host[0]; });
  if (hosts < 2 || per_host[0] < 2 || !even) return nullptr;
  MPI_Comm local, cross;
  t.check(MPI_Comm_split(t.comm(), host[t.rank()], t.rank(), &local), "MPI_Comm_split");
  t.check(MPI_Comm_split(t.comm(), local_rank[t.rank()], host[t.rank()], &cross), "MPI_Comm_split");
  auto h = std::make_shared<Hierarchy>(local, cross, t.timeout());
  if (shared_memory) h->local_scratch.shared = SharedArena::create(h->local, half_bytes);
  return h;
}

// Shards are balanced over the local ranks (so a count not divisible by them is fine, and ranks
// with an empty shard take part with nothing to send). Each shard is reduced once, by its owner
// on each host, and then copied, so every rank ends with the same bits.
void hierarchical_allreduce(Transport& t, Scratch& s, Hierarchy& h, const Tuning& tune, const Signature& sig,
                            char* buf, size_t count, DType dtype, ReduceOp op) {
  check_agreement(t, s, tune, sig);  // before any data moves, over the whole group
  const size_t esz = dtype_size(dtype);
  const Segments shards = Segments::balanced(count, h.local.size());
  SharedArena* arena = h.local_scratch.shared.get();
  if (arena)
    arena_reduce_scatter(h.local, *arena, tune, buf, shards, dtype, op);
  else
    ring_reduce_scatter(h.local, h.local_scratch, tune, buf, shards, dtype, op);

  // Every rank of the cross-host group has the same local rank, so the same shard length.
  const size_t len = shards.len[h.local.rank()];
  char* shard = buf + shards.off[h.local.rank()] * esz;
  if (len * esz <= tune.rd_max_bytes) {
    const Signature part = signature(Collective::all_reduce, dtype, len, op);
    if (!agree_and_reduce(h.cross, h.cross_scratch, tune, part, shard, len, dtype, op)) raise_mismatch(h.cross, part);
  } else {
    const Segments segs = Segments::balanced(len, h.cross.size());
    ring_reduce_scatter(h.cross, h.cross_scratch, tune, shard, segs, dtype, op);
    ring_allgather(h.cross, tune, shard, segs, esz);
  }

  if (arena)
    arena_allgather(h.local, *arena, tune, buf, shards, esz);
  else
    ring_allgather(h.local, tune, buf, shards, esz);
}

}  // namespace distml
