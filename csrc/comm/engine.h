// The process's one communication thread. Every MPI call of distml happens in exactly one
// thread at a time (MPI_THREAD_SERIALIZED is enough): queued work runs on the comm thread in
// submission order, and a synchronous call with nothing queued runs inline in the caller,
// which saves the thread hand-off on latency-bound collectives. One thread for all process
// groups keeps the issue order of collectives identical on every rank, which MPI needs.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace distml {

// The handle of one submitted collective.
class Work {
 public:
  // Block until done; rethrow the collective's error. Call without the GIL.
  void wait();
  bool is_completed();
  void finish(std::exception_ptr error);

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

class Engine {
 public:
  static Engine& get();
  // Run fn in order after everything submitted before. !async: also wait for it (no GIL) and
  // return nullptr when it ran inline, or rethrow its error.
  std::shared_ptr<Work> submit(std::function<void()> fn, bool async);
  // Finish the queue and join the thread (a later submit starts it again).
  void shutdown();
  // A collective failed in a way that leaves MPI requests behind (timeout, dead peer):
  // nothing may touch MPI again except MPI_Abort.
  bool failed();
  std::string failure();

 private:
  void loop();
  std::exception_ptr run(const std::function<void()>& fn);  // fn's error, if any

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::shared_ptr<Work>>> queue_;
  std::thread thread_;
  bool busy_ = false, stop_ = false;
  std::string failure_;
};

}  // namespace distml
