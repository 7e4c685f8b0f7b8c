#include "comm/shared_memory.h"

#include <algorithm>
#include <cstring>

#include "comm/agreement.h"
#include "comm/ring.h"

namespace distml {

// Small buffers take one round: every rank copies its buffer in, and after one sync each
// reduces all of them in rank order (the same order everywhere, so the results agree bit for
// bit). Larger ones go in chunks, one round and one sync each, with rank r's segment of every
// chunk at the same place in each half (slot r): a rank copies in the segments that others
// reduce; after the sync it reduces its own segment from the peers' copies straight into its
// buffer, publishes it in its slot, copies in the next chunk, and after the next sync copies
// the peers' reduced segments out.
void shared_allreduce(Transport& t, SharedArena& arena, const Tuning& tune, const Signature& sig, char* buf,
                      size_t count, DType dtype, ReduceOp op) {
  const int p = t.size(), me = t.rank();
  const size_t esz = dtype_size(dtype), bytes = count * esz;
  if (bytes <= std::min(tune.shared_one_round_bytes, arena.half_bytes())) {
    const uint64_t round = arena.begin_round(&sig);
    std::memcpy(arena.half(me, round), buf, bytes);
    sync_and_agree(t, arena, round);
    std::memcpy(buf, arena.half(0, round), bytes);
    for (int r = 1; r < p; ++r) reduce_into(buf, arena.half(r, round), count, dtype, op);
    return;
  }
  const size_t slot_elems = std::max<size_t>(1, std::min(tune.shared_chunk_bytes, arena.half_bytes()) / esz / p);
  const size_t chunk = slot_elems * p, chunks = (count + chunk - 1) / chunk;
  auto slot = [&](int owner, uint64_t round, int r) { return arena.half(owner, round) + r * slot_elems * esz; };
  auto segments = [&](size_t k) { return Segments::balanced(std::min(chunk, count - k * chunk), p); };
  auto copy_in = [&](size_t k) {
    const uint64_t round = arena.begin_round(k == 0 ? &sig : nullptr);
    const Segments segs = segments(k);
    for (int r = 0; r < p; ++r)
      if (r != me) std::memcpy(slot(me, round, r), buf + (k * chunk + segs.off[r]) * esz, segs.len[r] * esz);
    return round;
  };
  uint64_t round = copy_in(0);
  sync_and_agree(t, arena, round);
  for (size_t k = 0; k < chunks; ++k) {
    const Segments segs = segments(k);
    char* data = buf + k * chunk * esz;
    char* mine = data + segs.off[me] * esz;
    for (int r = 0; r < p; ++r)
      if (r != me) reduce_into(mine, slot(r, round, me), segs.len[me], dtype, op);
    std::memcpy(slot(me, round, me), mine, segs.len[me] * esz);
    const uint64_t next = k + 1 < chunks ? copy_in(k + 1) : 0;
    arena.sync(t);
    for (int r = 0; r < p; ++r)
      if (r != me) std::memcpy(data + segs.off[r] * esz, slot(r, round, r), segs.len[r] * esz);
    round = next;
  }
}

}  // namespace distml
