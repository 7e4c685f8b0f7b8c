// The hierarchical allreduce, for groups that span hosts with the same number (at least 2) of
// ranks on each: the ranks of a host reduce-scatter the buffer among themselves (through their
// shared arena, else the local ring), so each holds its shard reduced over the host; the ranks
// with the same local rank on every host allreduce that shard over MPI (all of a host's ranks
// send at once, each its own shard, so every link is busy); and the host allgathers the shards.
// Each rank moves about 2 (H - 1) / H of a shard between hosts instead of the flat ring's
// 2 (p - 1) / p of the whole buffer across its one link.
#pragma once
#include <memory>
#include <vector>

#include "comm/algorithms.h"

namespace distml {

// The sub-groups of a group that spans hosts: this host's ranks (ordered by group rank) and the
// ranks with this rank's local rank on every host (ordered by host). Each has its own
// communicator, split from the group's.
struct Hierarchy {
  // Collective over t's communicator. host[r]: the host index of group rank r (the same list on
  // every rank). Null on every rank unless the group spans >= 2 hosts with the same number
  // (>= 2) of ranks on each. shared_memory: give the local sub-group an arena of half_bytes.
  static std::shared_ptr<Hierarchy> create(const Transport& t, const std::vector<int>& host, bool shared_memory,
                                           size_t half_bytes);
  Hierarchy(MPI_Comm local, MPI_Comm cross, double timeout_s) : local(local, timeout_s), cross(cross, timeout_s) {}
  Transport local, cross;
  Scratch local_scratch, cross_scratch;  // local_scratch.shared: the host's arena, when there is one
};

// Allreduce of buf (count elements) in place over t's group; checks agreement over the whole
// group first. The result is the same bit for bit on every rank.
void hierarchical_allreduce(Transport& t, Scratch& s, Hierarchy& h, const Tuning& tune, const Signature& sig,
                            char* buf, size_t count, DType dtype, ReduceOp op);

}  // namespace distml
