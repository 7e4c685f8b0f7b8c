// A group of ranks on its own duplicated communicator (user MPI traffic never mixes with ours),
// with the collectives as methods. Each call is queued on the Engine; the caller's buffers must
// stay alive until the returned Work is done (the Python layer holds them).
#pragma once
#include <memory>
#include <vector>

#include "comm/algorithms.h"
#include "comm/engine.h"
#include "comm/flight_recorder.h"
#include "comm/transport.h"

namespace distml {

class ProcessGroup : public std::enable_shared_from_this<ProcessGroup> {
 public:
  // Duplicates MPI_COMM_WORLD once every rank reported within join_timeout_s (else a CommError
  // names the missing ranks). MPI must be initialised with at least MPI_THREAD_SERIALIZED.
  // shared_memory: give groups whose ranks all share a host a SharedArena (and the host's part of
  // a group that spans hosts, for the hierarchical allreduce).
  static std::shared_ptr<ProcessGroup> world(double timeout_s, double join_timeout_s, const Tuning& tune,
                                             bool shared_memory);
  // Collective over this group: the members of `ranks` (ranks of this group) get a new group,
  // the others get nullptr.
  std::shared_ptr<ProcessGroup> split(std::vector<int> ranks);
  // Releases the communicator after telling the peers this rank leaves (exiting: because the
  // program ends); the group is unusable afterwards.
  void free(bool exiting = false);

  int rank() const { return transport_.rank(); }
  int size() const { return transport_.size(); }
  int world_rank(int rank) const { return transport_.world_rank(rank); }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  bool shared_memory() const { return scratch_.shared != nullptr; }
  // Whether the group has sub-groups within and across hosts for the hierarchical allreduce.
  bool hierarchical() const { return scratch_.hierarchy != nullptr; }
  double timeout() const { return transport_.timeout(); }
  const Tuning& tuning() const { return tune_; }
  void set_tuning(const Tuning& tune) { tune_ = tune; }

  std::shared_ptr<Work> allreduce(void* buf, size_t count, DType dtype, ReduceOp op, bool async);
  std::shared_ptr<Work> broadcast(void* buf, size_t count, DType dtype, int root, bool async);
  std::shared_ptr<Work> allgather(const void* in, void* out, size_t count, DType dtype, bool async);
  std::shared_ptr<Work> reduce_scatter(const void* in, void* out, size_t count, DType dtype, ReduceOp op,
                                       bool async);
  std::shared_ptr<Work> reduce(void* buf, size_t count, DType dtype, ReduceOp op, int root, bool async);
  std::shared_ptr<Work> gather(const void* in, void* out, size_t count, DType dtype, int root, bool async);
  std::shared_ptr<Work> scatter(const void* in, void* out, size_t count, DType dtype, int root, bool async);
  std::shared_ptr<Work> barrier(bool async);
  std::shared_ptr<Work> send(const void* buf, size_t count, DType dtype, int dst, int tag, bool async);
  // *source receives the sender's rank once the Work is done.
  std::shared_ptr<Work> recv(void* buf, size_t count, DType dtype, int src, int tag, std::shared_ptr<int> source,
                             bool async);

  ProcessGroup(MPI_Comm comm, double timeout_s, const Tuning& tune, bool shared_memory);

 private:
  // What the flight recorder notes about a collective besides its name.
  struct Call {
    size_t count = 0;
    DType dtype = DType::u8;
    int peer = -1;  // root, source or destination
    const char* algo = "";
    bool p2p = false;  // send/recv: numbered apart, since only two ranks make them
  };
  // Queue fn(transport, scratch) on the engine, recorded in the flight recorder; the group stays
  // alive until it ran.
  std::shared_ptr<Work> submit(const char* what, const Call& call, std::function<void(Transport&, Scratch&)> fn,
                               bool async);
  const char* allreduce_algo(size_t bytes) const;
  void check_rank(int rank, const char* what) const;

  Transport transport_;
  Scratch scratch_;
  Tuning tune_;
  int local_rank_ = 0, local_size_ = 1;
  bool wants_shared_memory_;
  bool freed_ = false;
  bool is_world_ = false;
  int record_group_ = 0;   // this group's id in the flight recorder
  uint64_t sequence_ = 0, p2p_sequence_ = 0;  // collectives and sends/recvs submitted to this group
};

}  // namespace distml
