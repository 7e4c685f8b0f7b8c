#include "comm/transport.h"

#include <sched.h>

#include <chrono>
#include <climits>
#include <sstream>
#include <thread>

namespace distml {

Transport::Transport(MPI_Comm comm, double timeout_s) : comm_(comm), timeout_s_(timeout_s) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  // Errors come back as codes (turned into CommError) instead of aborting the job.
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  MPI_Group group, world;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  std::vector<int> local(size_);
  for (int i = 0; i < size_; ++i) local[i] = i;
  world_ranks_.resize(size_);
  MPI_Group_translate_ranks(group, size_, local.data(), world, world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world);
}

void Transport::fail(const std::string& message, bool fatal) const {
  throw CommError(context_ + ": " + message, fatal);
}

void Transport::check(int code, const char* call) const {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail(std::string(call) + " failed: " + std::string(text, length), true);
}

// The algorithms split big buffers into chunks; a single message must fit MPI's int count.
static int message_count(size_t bytes, const Transport& t) {
  if (bytes > static_cast<size_t>(INT_MAX))
    t.fail("a single message of " + std::to_string(bytes) + " bytes exceeds MPI's limit of " +
               std::to_string(INT_MAX) + " bytes",
           true);
  return static_cast<int>(bytes);
}

MPI_Request Transport::isend(const void* buf, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check(MPI_Isend(buf, message_count(bytes, *this), MPI_BYTE, peer, tag, comm_, &request), "MPI_Isend");
  return request;
}

MPI_Request Transport::irecv(void* buf, size_t bytes, int peer, int tag) {
  MPI_Request request;
  check(MPI_Irecv(buf, message_count(bytes, *this), MPI_BYTE, peer, tag, comm_, &request), "MPI_Irecv");
  return request;
}

void Transport::wait(MPI_Request* requests, int n, const int* peers, MPI_Status* statuses) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::vector<MPI_Status> own(statuses ? 0 : n);
  MPI_Status* st = statuses ? statuses : own.data();
  // Poll hot for a few tries, then yield the core (ranks may outnumber cores), and once the
  // wait is clearly long (a late or dead peer) sleep between polls so it costs no CPU.
  for (long polls = 0;; ++polls) {
    int done = 0;
    int code = MPI_Testall(n, requests, &done, st);
    if (code == MPI_ERR_IN_STATUS) {
      for (int i = 0; i < n; ++i) {
        if (st[i].MPI_ERROR == MPI_ERR_TRUNCATE)
          fail("rank " + std::to_string(world_rank(peers[i])) +
                   " sent a larger message than this rank expected (tensor sizes differ across ranks)",
               true);
        if (st[i].MPI_ERROR != MPI_SUCCESS && st[i].MPI_ERROR != MPI_ERR_PENDING)
          check(st[i].MPI_ERROR, "MPI_Testall");
      }
    }
    check(code, "MPI_Testall");
    if (done) return;
    if (polls < 64) continue;
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_s_) break;
    if (waited < 0.01) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(waited < 0.1 ? 100 : 1000));
    }
  }
  std::ostringstream missing;
  const char* sep = "";
  for (int i = 0; i < n; ++i) {
    int done = 0;
    MPI_Test(&requests[i], &done, MPI_STATUS_IGNORE);
    if (!done) {
      missing << sep << (peers[i] == MPI_ANY_SOURCE ? std::string("any") : std::to_string(world_rank(peers[i])));
      sep = ", ";
    }
  }
  std::ostringstream message;
  message << "timed out after " << timeout_s_ << " s waiting for rank(s) " << missing.str()
          << " (dead or stalled; set the limit with init_process_group(timeout=...) or DISTML_TIMEOUT)";
  fail(message.str(), true);
}

}  // namespace distml
