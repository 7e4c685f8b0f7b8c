#include "comm/transport.h"

#include <sched.h>

#include <chrono>
#include <climits>
#include <set>
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
  // Poll hot for a few tries, then yield the core between polls (ranks may outnumber cores, and
  // shared-memory transfers only progress inside MPI calls); after 50 ms the wait is clearly
  // long (a late or dead peer), so sleep between polls: 0.1 ms, and 1 ms after a second.
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
    if (waited < 0.05) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(waited < 1.0 ? 100 : 1000));
    }
  }
  std::set<int> late;  // group ranks, or MPI_ANY_SOURCE
  for (int i = 0; i < n; ++i) {
    int done = 0;
    MPI_Test(&requests[i], &done, MPI_STATUS_IGNORE);
    if (!done) late.insert(peers[i]);
  }
  fail(timeout_message(late), true);
}

std::string Transport::names(const std::set<int>& ranks) const {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + (r == MPI_ANY_SOURCE ? "any" : std::to_string(world_rank(r)));
  return out;
}

// A rank may be waiting for a peer that is itself waiting (recursive doubling, rings). So each
// rank that times out tells the others whom it waits for, and listens for a moment for the same
// news from them: the ranks waited for that never reported waiting are the ones that did not arrive.
std::string Transport::timeout_message(const std::set<int>& late) {
  int* upper = nullptr;
  int found = 0;
  MPI_Comm_get_attr(comm_, MPI_TAG_UB, &upper, &found);
  const int notice_tag = found ? *upper : 32767;  // above every tag the algorithms use
  std::vector<int> notice(late.begin(), late.end());
  std::vector<MPI_Request> unused(size_);
  for (int i = 0; i < size_; ++i)  // never completed: the communicator is abandoned after this
    if (i != rank_) MPI_Isend(notice.data(), static_cast<int>(notice.size()), MPI_INT, i, notice_tag, comm_, &unused[i]);

  std::set<int> waiting = {rank_}, candidates = late;
  std::ostringstream others;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::min(1.0, timeout_s_));
  while (std::chrono::steady_clock::now() < until && static_cast<int>(waiting.size()) < size_) {
    int arrived = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, notice_tag, comm_, &arrived, &st);
    if (!arrived) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    int count = 0;
    MPI_Get_count(&st, MPI_INT, &count);
    std::vector<int> theirs(count);
    MPI_Recv(theirs.data(), count, MPI_INT, st.MPI_SOURCE, notice_tag, comm_, MPI_STATUS_IGNORE);
    if (!waiting.insert(st.MPI_SOURCE).second) continue;
    candidates.insert(theirs.begin(), theirs.end());
    if (late.count(st.MPI_SOURCE))
      others << "; rank " << world_rank(st.MPI_SOURCE) << " is itself waiting for rank(s) "
             << names(std::set<int>(theirs.begin(), theirs.end()));
  }
  std::set<int> absent;
  for (int r : candidates)
    if (!waiting.count(r)) absent.insert(r);
  std::ostringstream message;
  message << "timed out after " << timeout_s_ << " s waiting for rank(s) " << names(late) << others.str();
  if (!absent.empty() && absent != late) message << "; rank(s) " << names(absent) << " did not arrive";
  message << kTimeoutAdvice;
  return message.str();
}

}  // namespace distml
