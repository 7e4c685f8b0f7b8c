// Point-to-point messages on a private communicator, with a deadline: every wait polls its
// nonblocking requests, so a peer that died or stalled becomes an error that names it.
#pragma once
#include <mpi.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace distml {

// Ends every timeout message.
constexpr const char* kTimeoutAdvice =
    " (dead or stalled; set the limit with init_process_group(timeout=...) or DISTML_TIMEOUT)";

// fatal: the communicator may hold unfinished requests, so it must not be used again.
struct CommError : std::runtime_error {
  CommError(const std::string& what, bool fatal) : std::runtime_error(what), fatal(fatal) {}
  bool fatal;
};

class Transport {
 public:
  Transport(MPI_Comm comm, double timeout_s);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int world_rank(int rank) const { return world_ranks_[rank]; }
  MPI_Comm comm() const { return comm_; }
  double timeout() const { return timeout_s_; }
  void set_timeout(double timeout_s) { timeout_s_ = timeout_s; }
  // The collective being run, for error messages.
  void set_context(const std::string& what) { context_ = what; }

  // Nonblocking send/receive of raw bytes (at most INT_MAX bytes each). peer may be MPI_ANY_SOURCE.
  MPI_Request isend(const void* buf, size_t bytes, int peer, int tag);
  MPI_Request irecv(void* buf, size_t bytes, int peer, int tag);

  // Wait for all n requests; peers[i] is the rank request i talks to. Throws a fatal
  // CommError naming the peers still missing when the timeout passes.
  void wait(MPI_Request* requests, int n, const int* peers, MPI_Status* statuses = nullptr);
  void wait(MPI_Request& request, int peer, MPI_Status* status = nullptr) {
    wait(&request, 1, &peer, status);
  }

  [[noreturn]] void fail(const std::string& message, bool fatal) const;
  void check(int mpi_code, const char* call) const;

 private:
  std::string names(const std::set<int>& ranks) const;  // world ranks, for messages
  std::string timeout_message(const std::set<int>& late);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
  double timeout_s_;
  std::string context_;
};

}  // namespace distml
