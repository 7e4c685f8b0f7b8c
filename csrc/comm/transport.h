// Point-to-point messages on a private communicator, with a deadline: every wait polls its
// nonblocking requests, so a peer that died or stalled becomes an error that names it.
#pragma once
#include <mpi.h>

#include <chrono>
#include <map>
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

// Why a rank left: its goodbye message's payload.
enum class Leave : int { destroyed = 0, exited = 1 };

// A peer that left gets this long (from its goodbye's arrival) to complete what it owed before
// a wait on it raises: data sent before the goodbye may still be on its way.
constexpr double kGoodbyeGraceS = 1.0;
// How long a leaving rank listens for its peers' goodbyes (Transport::await_goodbyes).
constexpr double kFarewellS = 3.0;

// Reserved tags at the top of the tag space, above every tag the algorithms use.
int reserved_tag(MPI_Comm comm, int below_top);

// The world group's communicator: every wait also listens there for goodbyes of ranks that
// exit. MPI_COMM_NULL when there is no world (set before its first collective, cleared on free).
void set_world_comm(MPI_Comm comm);

// Post a goodbye to every other rank of comm (nonblocking, never waited for), before comm is freed.
void say_goodbye(MPI_Comm comm, Leave why);

// Before MPI_COMM_WORLD is used: every rank reports to rank 0 within timeout_s, and rank 0
// answers with the ranks that never came (empty: all arrived). Throws a fatal CommError naming
// them on every rank that heard back, or naming rank 0 on those that did not.
void check_arrivals(double timeout_s);

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

  // Called from a wait's polling loop: take in the goodbyes that arrived, and throw once a peer
  // that pending(group rank) says this rank still waits for left more than kGoodbyeGraceS ago.
  template <class Pending>
  void check_departures(int n, Pending pending);

  // After this rank's own goodbye: take in every peer's, for up to limit_s. At a normal end all ranks
  // leave together, and a goodbye still unread when its receiver closes its connections would
  // reach a closed socket (over TCP MPI then aborts the sender as a peer that "disconnected").
  void await_goodbyes(double limit_s);

  [[noreturn]] void fail(const std::string& message, bool fatal) const;
  void check(int mpi_code, const char* call) const;

 private:
  std::string names(const std::set<int>& ranks) const;  // world ranks, for messages
  std::string timeout_message(const std::set<int>& late);
  void receive_goodbyes();
  // The goodbye of group rank r (its reason and when it came), or null.
  const std::pair<Leave, std::chrono::steady_clock::time_point>* departure(int r) const;
  [[noreturn]] void fail_departed(int r, Leave why) const;

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<int> world_ranks_;
  double timeout_s_;
  std::string context_;
  int goodbye_tag_;
  std::map<int, std::pair<Leave, std::chrono::steady_clock::time_point>> departed_;  // group ranks
};

template <class Pending>
void Transport::check_departures(int n, Pending pending) {
  receive_goodbyes();
  const auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const int r = pending(i);
    if (r < 0) continue;
    const auto* left = departure(r);
    if (left && std::chrono::duration<double>(now - left->second).count() > kGoodbyeGraceS)
      fail_departed(r, left->first);
  }
}

}  // namespace distml
