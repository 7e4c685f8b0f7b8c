// Which algorithm runs for which call. Every collective checks agreement first (agreement.h),
// then moves data with the ring (ring.h), recursive doubling (recursive_doubling.h), root
// exchanges (tree.h), the shared arena (shared_memory.h) or, for allreduces across hosts, within
// and across hosts in turn (hierarchical.h). send/recv: point_to_point.cpp.
#include "comm/algorithms.h"

#include <cstring>

#include "comm/agreement.h"
#include "comm/hierarchical.h"
#include "comm/recursive_doubling.h"
#include "comm/ring.h"
#include "comm/shared_memory.h"
#include "comm/tree.h"

namespace distml {

Algo choose_allreduce(const Tuning& tune, size_t bytes, bool shared_memory, bool hierarchical) {
  if (tune.allreduce != Algo::automatic) return tune.allreduce;
  if (shared_memory) return Algo::shared_memory;
  if (bytes <= tune.rd_max_bytes) return Algo::recursive_doubling;
  return hierarchical ? Algo::hierarchical : Algo::ring;
}

void allreduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype,
               ReduceOp op) {
  if (t.size() == 1) return;
  const Signature sig = signature(Collective::all_reduce, dtype, count, op);
  const Algo algo = choose_allreduce(tune, count * dtype_size(dtype), s.shared != nullptr, s.hierarchy != nullptr);
  if (algo == Algo::shared_memory && !s.shared)
    t.fail("the shared-memory allreduce needs every rank of the group on one host, with shared memory enabled",
           false);
  if (algo == Algo::hierarchical && !s.hierarchy)
    t.fail("the hierarchical allreduce needs a group that spans several hosts with the same number (at least 2) "
           "of ranks on each",
           false);
  char* data = static_cast<char*>(buf);
  switch (algo) {
    case Algo::shared_memory:
      shared_allreduce(t, *s.shared, tune, sig, data, count, dtype, op);
      break;
    case Algo::hierarchical:
      hierarchical_allreduce(t, s, *s.hierarchy, tune, sig, data, count, dtype, op);
      break;
    case Algo::recursive_doubling:
      if (s.shared) check_agreement(t, s, tune, sig);  // the same check as every other collective
      if (!agree_and_reduce(t, s, tune, sig, buf, count, dtype, op)) raise_mismatch(t, sig);
      break;
    default: {
      check_agreement(t, s, tune, sig);
      const Segments segs = Segments::balanced(count, t.size());
      ring_reduce_scatter(t, s, tune, data, segs, dtype, op);
      ring_allgather(t, tune, data, segs, dtype_size(dtype));
    }
  }
}

void broadcast(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype, int root) {
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::broadcast, dtype, count, ReduceOp::sum, root));
  const size_t esz = dtype_size(dtype);
  char* data = static_cast<char*>(buf);
  if (count * esz <= tune.tree_max_bytes || count < static_cast<size_t>(t.size())) {
    tree_broadcast(t, data, count * esz, root);
    return;
  }
  // Large: scatter the segments from root, then a ring allgather (bandwidth ~2x the size).
  const Segments segs = Segments::balanced(count, t.size());
  root_exchange_segments(t, data, segs, esz, root, false);
  ring_allgather(t, tune, data, segs, esz);
}

void allgather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count,
               DType dtype) {
  const size_t esz = dtype_size(dtype);
  char* slot = static_cast<char*>(out) + t.rank() * count * esz;
  if (in != slot) std::memmove(slot, in, count * esz);
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::all_gather, dtype, count));
  ring_allgather(t, tune, static_cast<char*>(out), Segments::equal(count, t.size()), esz);
}

void reduce_scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count,
                    DType dtype, ReduceOp op) {
  const size_t esz = dtype_size(dtype), bytes = count * esz;
  if (t.size() > 1) check_agreement(t, s, tune, signature(Collective::reduce_scatter, dtype, count, op));
  const Segments segs = Segments::equal(count, t.size());
  if (out == static_cast<const char*>(in) + t.rank() * bytes) {  // in place: the ring works on in itself
    ring_reduce_scatter(t, s, tune, static_cast<char*>(out) - t.rank() * bytes, segs, dtype, op);
    return;
  }
  // The ring reduces in place, and the input must survive: work on a copy.
  s.work.assign(static_cast<const char*>(in), static_cast<const char*>(in) + t.size() * bytes);
  ring_reduce_scatter(t, s, tune, s.work.data(), segs, dtype, op);
  std::memcpy(out, s.work.data() + t.rank() * bytes, bytes);
}

void reduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype, ReduceOp op,
            int root) {
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::reduce, dtype, count, op, root));
  const size_t esz = dtype_size(dtype);
  // Reduce-scatter (on a copy off root), then every rank hands its reduced segment to root.
  if (t.rank() != root) s.work.assign(static_cast<char*>(buf), static_cast<char*>(buf) + count * esz);
  char* work = t.rank() == root ? static_cast<char*>(buf) : s.work.data();
  const Segments segs = Segments::balanced(count, t.size());
  ring_reduce_scatter(t, s, tune, work, segs, dtype, op);
  root_exchange_segments(t, work, segs, esz, root, true);
}

void gather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root) {
  const size_t bytes = count * dtype_size(dtype);
  if (t.rank() == root) {
    char* slot = static_cast<char*>(out) + root * bytes;
    if (in != slot) std::memmove(slot, in, bytes);
  }
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::gather, dtype, count, ReduceOp::sum, root));
  root_exchange(t, static_cast<char*>(out), const_cast<char*>(static_cast<const char*>(in)), bytes, root, true);
}

void scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root) {
  const size_t bytes = count * dtype_size(dtype);
  if (t.rank() == root) {
    const char* slot = static_cast<const char*>(in) + root * bytes;
    if (out != slot) std::memmove(out, slot, bytes);
  }
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::scatter, dtype, count, ReduceOp::sum, root));
  root_exchange(t, const_cast<char*>(static_cast<const char*>(in)), static_cast<char*>(out), bytes, root, false);
}

void barrier(Transport& t, Scratch& s, const Tuning& tune) {
  if (t.size() > 1) check_agreement(t, s, tune, signature(Collective::barrier, DType::u8, 0));
}

}  // namespace distml
