#include "comm/process_group.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "comm/hierarchical.h"

namespace distml {

// Each half of a rank's part of the arena: the shared-memory allreduce's chunk.
constexpr size_t kArenaHalfBytes = 1 << 20;

namespace {

// The host of each rank of t's group (collective): ranks whose host names agree share a host,
// numbered in the order of their first rank. Not MPI_COMM_TYPE_SHARED: under `srun --mpi=pmix`
// that gives groups of one rank.
std::vector<int> host_indices(const Transport& t) {
  constexpr int kName = 256;
  char name[kName] = {};
  gethostname(name, kName - 1);
  std::vector<char> all(static_cast<size_t>(t.size()) * kName);
  t.check(MPI_Allgather(name, kName, MPI_CHAR, all.data(), kName, MPI_CHAR, t.comm()), "MPI_Allgather");
  std::vector<std::string> names;
  std::vector<int> host(t.size());
  for (int r = 0; r < t.size(); ++r) {
    const std::string theirs(all.data() + static_cast<size_t>(r) * kName);
    const auto known = std::find(names.begin(), names.end(), theirs);
    host[r] = static_cast<int>(known - names.begin());
    if (known == names.end()) names.push_back(theirs);
  }
  return host;
}

}  // namespace

ProcessGroup::ProcessGroup(MPI_Comm comm, double timeout_s, const Tuning& tune, bool shared_memory)
    : transport_(comm, timeout_s), tune_(tune), wants_shared_memory_(shared_memory) {
  // Ranks that share a host make up the "local" world.
  const std::vector<int> host = host_indices(transport_);
  local_size_ = static_cast<int>(std::count(host.begin(), host.end(), host[rank()]));
  local_rank_ = static_cast<int>(std::count(host.begin(), host.begin() + rank(), host[rank()]));
  if (shared_memory && local_size_ == size() && size() > 1)
    scratch_.shared = SharedArena::create(transport_, kArenaHalfBytes);
  scratch_.hierarchy = Hierarchy::create(transport_, host, shared_memory, kArenaHalfBytes);
  std::vector<int> members(size());
  for (int r = 0; r < size(); ++r) members[r] = world_rank(r);
  record_group_ = FlightRecorder::get().add_group(members);
}

std::shared_ptr<ProcessGroup> ProcessGroup::world(double timeout_s, double join_timeout_s, const Tuning& tune,
                                                  bool shared_memory) {
  int level = 0;
  MPI_Query_thread(&level);
  if (level < MPI_THREAD_SERIALIZED)
    throw CommError("distml needs MPI initialised with MPI_THREAD_SERIALIZED or higher, got level " +
                        std::to_string(level),
                    false);
  std::shared_ptr<ProcessGroup> group;
  Engine::get().submit([&] {
    // MPI_Comm_dup is collective: a rank that never comes would block it forever.
    check_arrivals(std::max(0.0, join_timeout_s));
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    group = std::make_shared<ProcessGroup>(comm, timeout_s, tune, shared_memory);
    group->is_world_ = true;
    set_world_comm(comm);
  }, false);
  return group;
}

std::shared_ptr<ProcessGroup> ProcessGroup::split(std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  for (size_t i = 0; i < ranks.size(); ++i) {
    check_rank(ranks[i], "new_group");
    if (i && ranks[i] == ranks[i - 1])
      throw CommError("new_group: rank " + std::to_string(ranks[i]) + " is listed twice", false);
  }
  const bool member = std::binary_search(ranks.begin(), ranks.end(), rank());
  std::shared_ptr<ProcessGroup> group;
  Engine::get().submit([&] {
    MPI_Comm comm;
    transport_.check(MPI_Comm_split(transport_.comm(), member ? 0 : MPI_UNDEFINED, rank(), &comm),
                     "MPI_Comm_split");
    if (member) group = std::make_shared<ProcessGroup>(comm, transport_.timeout(), tune_, wants_shared_memory_);
  }, false);
  return group;
}

void ProcessGroup::free(bool exiting) {
  if (freed_) return;
  freed_ = true;
  if (Engine::get().failed()) return;  // MPI may not be touched again
  auto self = shared_from_this();
  Engine::get().submit([self, exiting] {
    self->scratch_.shared.reset();
    std::vector<Transport*> transports = {&self->transport_};  // with the hierarchy's sub-groups
    if (Hierarchy* h = self->scratch_.hierarchy.get()) transports.insert(transports.end(), {&h->local, &h->cross});
    // Peers that wait for this rank in a collective raise instead of waiting for the timeout.
    for (Transport* t : transports) say_goodbye(t->comm(), exiting ? Leave::exited : Leave::destroyed);
    const auto start = std::chrono::steady_clock::now();
    for (Transport* t : transports)
      t->await_goodbyes(kFarewellS - std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (self->is_world_) set_world_comm(MPI_COMM_NULL);
    for (Transport* t : transports) {
      MPI_Comm comm = t->comm();
      MPI_Comm_free(&comm);
    }
    self->scratch_.hierarchy.reset();
  }, false);
}

void ProcessGroup::check_rank(int r, const char* what) const {
  if (r < 0 || r >= size())
    throw CommError(std::string(what) + ": rank " + std::to_string(r) + " is outside the group of size " +
                        std::to_string(size()),
                    false);
}

std::shared_ptr<Work> ProcessGroup::submit(const char* what, const Call& call,
                                           std::function<void(Transport&, Scratch&)> fn, bool async) {
  if (freed_) throw CommError(std::string(what) + ": the process group was destroyed", false);
  auto self = shared_from_this();
  FlightRecorder& recorder = FlightRecorder::get();
  const uint64_t seq = call.p2p ? ++p2p_sequence_ : ++sequence_;
  const uint64_t id = recorder.queued(record_group_, seq, what, call.count, call.dtype, call.algo, call.peer);
  try {
    return Engine::get().submit([self, what, id, fn = std::move(fn)] {
      FlightRecorder& recorder = FlightRecorder::get();
      recorder.started(id);
      self->transport_.set_context(what);
      if (Hierarchy* h = self->scratch_.hierarchy.get()) {
        h->local.set_context(what);
        h->cross.set_context(what);
      }
      try {
        fn(self->transport_, self->scratch_);
      } catch (const CommError& e) {
        recorder.failed(id, e.what(), e.fatal);
        throw;
      } catch (const std::exception& e) {
        recorder.failed(id, e.what(), false);
        throw;
      }
      recorder.done(id);
    }, async);
  } catch (const CommError& e) {  // refused before it ran: the group is unusable
    recorder.failed(id, e.what(), false);
    throw;
  }
}

// The allreduce algorithm that algorithms.cpp will choose, for the flight recorder.
const char* ProcessGroup::allreduce_algo(size_t bytes) const {
  const Algo algo = choose_allreduce(tune_, bytes, shared_memory(), hierarchical());
  static const char* names[] = {"auto", "ring", "recursive_doubling", "shared_memory", "hierarchical"};
  return size() == 1 ? "none" : names[static_cast<int>(algo)];
}

std::shared_ptr<Work> ProcessGroup::allreduce(void* buf, size_t count, DType dtype, ReduceOp op, bool async) {
  const Call call{count, dtype, -1, allreduce_algo(count * dtype_size(dtype))};
  return submit("all_reduce", call, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::allreduce(t, s, tune, buf, count, dtype, op);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::broadcast(void* buf, size_t count, DType dtype, int root, bool async) {
  check_rank(root, "broadcast");
  return submit("broadcast", {count, dtype, root}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::broadcast(t, s, tune, buf, count, dtype, root);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::allgather(const void* in, void* out, size_t count, DType dtype, bool async) {
  return submit("all_gather", {count, dtype}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::allgather(t, s, tune, in, out, count, dtype);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::reduce_scatter(const void* in, void* out, size_t count, DType dtype,
                                                   ReduceOp op, bool async) {
  return submit("reduce_scatter", {count, dtype}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::reduce_scatter(t, s, tune, in, out, count, dtype, op);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::reduce(void* buf, size_t count, DType dtype, ReduceOp op, int root,
                                           bool async) {
  check_rank(root, "reduce");
  return submit("reduce", {count, dtype, root}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::reduce(t, s, tune, buf, count, dtype, op, root);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::gather(const void* in, void* out, size_t count, DType dtype, int root,
                                           bool async) {
  check_rank(root, "gather");
  return submit("gather", {count, dtype, root}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::gather(t, s, tune, in, out, count, dtype, root);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::scatter(const void* in, void* out, size_t count, DType dtype, int root,
                                            bool async) {
  check_rank(root, "scatter");
  return submit("scatter", {count, dtype, root}, [=, tune = tune_](Transport& t, Scratch& s) {
    distml::scatter(t, s, tune, in, out, count, dtype, root);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::barrier(bool async) {
  return submit("barrier", {}, [tune = tune_](Transport& t, Scratch& s) { distml::barrier(t, s, tune); }, async);
}

std::shared_ptr<Work> ProcessGroup::send(const void* buf, size_t count, DType dtype, int dst, int tag,
                                         bool async) {
  check_rank(dst, "send");
  return submit("send", {count, dtype, dst, "", true}, [=](Transport& t, Scratch&) {
    distml::send(t, buf, count, dtype, dst, tag);
  }, async);
}

std::shared_ptr<Work> ProcessGroup::recv(void* buf, size_t count, DType dtype, int src, int tag,
                                         std::shared_ptr<int> source, bool async) {
  if (src != MPI_ANY_SOURCE) check_rank(src, "recv");
  return submit("recv", {count, dtype, src, "", true}, [=](Transport& t, Scratch&) {
    *source = distml::recv(t, buf, count, dtype, src, tag);
  }, async);
}

}  // namespace distml
