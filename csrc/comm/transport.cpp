#include "comm/transport.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <set>
#include <sstream>
#include <thread>

namespace distml {

namespace {

using Clock = std::chrono::steady_clock;
using Departure = std::pair<Leave, Clock::time_point>;

// Below the timeout notice (the top tag): the goodbye; below that, init's hello on COMM_WORLD.
constexpr int kGoodbyeBelowTop = 1, kHelloBelowTop = 2;

MPI_Comm world_comm = MPI_COMM_NULL;
int world_goodbye_tag = 0;
std::map<int, Departure> world_departed;  // world ranks that exited, and when their goodbye came

// Receive every goodbye waiting on comm into `into` (keyed by the sender's rank in comm).
void drain_goodbyes(MPI_Comm comm, int tag, std::map<int, Departure>& into) {
  for (;;) {
    int arrived = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, tag, comm, &arrived, &st) != MPI_SUCCESS || !arrived) return;
    int why = 0;
    MPI_Recv(&why, 1, MPI_INT, st.MPI_SOURCE, tag, comm, MPI_STATUS_IGNORE);
    into.emplace(st.MPI_SOURCE, Departure{static_cast<Leave>(why), Clock::now()});
  }
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

}  // namespace

int reserved_tag(MPI_Comm comm, int below_top) {
  int* upper = nullptr;
  int found = 0;
  MPI_Comm_get_attr(comm, MPI_TAG_UB, &upper, &found);
  return (found ? *upper : 32767) - below_top;
}

void set_world_comm(MPI_Comm comm) {
  world_comm = comm;
  world_departed.clear();  // goodbyes belong to the world they were said in
  if (comm != MPI_COMM_NULL) world_goodbye_tag = reserved_tag(comm, kGoodbyeBelowTop);
}

void say_goodbye(MPI_Comm comm, Leave why) {
  static const int reasons[] = {static_cast<int>(Leave::destroyed), static_cast<int>(Leave::exited)};
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int tag = reserved_tag(comm, kGoodbyeBelowTop);
  for (int peer = 0; peer < size; ++peer) {
    if (peer == rank) continue;
    MPI_Request request;  // a small eager message: it leaves even if nobody ever receives it
    if (MPI_Isend(&reasons[static_cast<int>(why)], 1, MPI_INT, peer, tag, comm, &request) == MPI_SUCCESS)
      MPI_Request_free(&request);
  }
}

void check_arrivals(double timeout_s) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1) return;
  const int tag = reserved_tag(MPI_COMM_WORLD, kHelloBelowTop);
  const auto start = Clock::now();
  auto waited = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto pause = [&] {
    if (waited() < 0.05) sched_yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  };
  std::ostringstream limit;
  limit << timeout_s << " s";
  if (rank == 0) {
    std::vector<int> hello(size), missing;
    std::vector<MPI_Request> requests(size, MPI_REQUEST_NULL);
    for (int r = 1; r < size; ++r) MPI_Irecv(&hello[r], 1, MPI_INT, r, tag, MPI_COMM_WORLD, &requests[r]);
    for (int done = 0; !done && waited() < timeout_s; pause())
      MPI_Testall(size, requests.data(), &done, MPI_STATUSES_IGNORE);
    for (int r = 1; r < size; ++r) {
      int done = 0;
      MPI_Test(&requests[r], &done, MPI_STATUS_IGNORE);
      if (!done) missing.push_back(r);
    }
    // Tell the ranks that came; the requests of those that did not are abandoned with the job.
    std::vector<MPI_Request> replies;
    for (int r = 1; r < size; ++r) {
      if (std::find(missing.begin(), missing.end(), r) != missing.end()) continue;
      replies.emplace_back();
      MPI_Isend(missing.data(), static_cast<int>(missing.size()), MPI_INT, r, tag, MPI_COMM_WORLD, &replies.back());
    }
    if (missing.empty()) {
      MPI_Waitall(static_cast<int>(replies.size()), replies.data(), MPI_STATUSES_IGNORE);
      return;
    }
    throw CommError("init_process_group: timed out after " + limit.str() + " waiting for rank(s) " +
                        rank_list(missing) + " to join (they never called init_process_group, or are stalled)" +
                        kTimeoutAdvice,
                    true);
  }
  const int hello = rank;
  std::vector<int> missing(size);
  MPI_Request requests[2];
  MPI_Isend(&hello, 1, MPI_INT, 0, tag, MPI_COMM_WORLD, &requests[0]);
  MPI_Irecv(missing.data(), size, MPI_INT, 0, tag, MPI_COMM_WORLD, &requests[1]);
  MPI_Status statuses[2];
  int done = 0;
  // Rank 0 answers by the timeout at the latest; give its answer a moment more to arrive.
  for (; !done && waited() < timeout_s + 2.0; pause()) MPI_Testall(2, requests, &done, statuses);
  if (!done)
    throw CommError("init_process_group: timed out after " + limit.str() +
                        " waiting for rank 0 to confirm that every rank joined (rank 0 is stalled or "
                        "never called init_process_group)" + kTimeoutAdvice,
                    true);
  int count = 0;
  MPI_Get_count(&statuses[1], MPI_INT, &count);
  if (count > 0)
    throw CommError("init_process_group: timed out after " + limit.str() + " waiting for rank(s) " +
                        rank_list(std::vector<int>(missing.begin(), missing.begin() + count)) +
                        " to join (they never called init_process_group, or are stalled)" + kTimeoutAdvice,
                    true);
}

Transport::Transport(MPI_Comm comm, double timeout_s)
    : comm_(comm), timeout_s_(timeout_s), goodbye_tag_(reserved_tag(comm, kGoodbyeBelowTop)) {
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
      continue;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(waited < 1.0 ? 100 : 1000));
    if (polls % 16 == 0)  // a long wait: has a peer it depends on left the job?
      check_departures(n, [&](int i) {
        int complete = 0;
        MPI_Request_get_status(requests[i], &complete, MPI_STATUS_IGNORE);
        return complete ? -1 : peers[i];
      });
  }
  std::set<int> late;  // group ranks, or MPI_ANY_SOURCE
  for (int i = 0; i < n; ++i) {
    int done = 0;
    MPI_Test(&requests[i], &done, MPI_STATUS_IGNORE);
    if (!done) late.insert(peers[i]);
  }
  fail(timeout_message(late), true);
}

void Transport::receive_goodbyes() {
  if (comm_ != world_comm) drain_goodbyes(comm_, goodbye_tag_, departed_);
  if (world_comm != MPI_COMM_NULL) drain_goodbyes(world_comm, world_goodbye_tag, world_departed);
}

void Transport::await_goodbyes(double limit_s) {
  const auto start = Clock::now();
  for (;;) {
    receive_goodbyes();
    int heard = 0;
    for (int r = 0; r < size_; ++r) heard += r != rank_ && departure(r) != nullptr;
    if (heard == size_ - 1 || std::chrono::duration<double>(Clock::now() - start).count() > limit_s) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// A goodbye on this group's communicator (destroy_process_group(group)), or on the world's.
const Departure* Transport::departure(int r) const {
  auto own = departed_.find(r);
  if (own != departed_.end()) return &own->second;
  auto world = world_departed.find(world_rank(r));
  return world != world_departed.end() ? &world->second : nullptr;
}

void Transport::fail_departed(int r, Leave why) const {
  fail("rank " + std::to_string(world_rank(r)) + " left (" +
           (why == Leave::exited ? "its program ended" : "it called destroy_process_group") +
           ") while this rank waited for it in " + context_,
       true);
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
