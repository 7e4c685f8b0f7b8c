#include "comm/engine.h"

#include "comm/transport.h"

namespace distml {

void Work::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [this] { return done_; });
  if (error_) std::rethrow_exception(error_);
}

bool Work::is_completed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void Work::finish(std::exception_ptr error) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = true;
  error_ = error;
  done_cv_.notify_all();
}

Engine& Engine::get() {
  static Engine* engine = new Engine();  // never destroyed: the thread is joined by shutdown()
  return *engine;
}

std::shared_ptr<Work> Engine::submit(std::function<void()> fn, bool async) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!failure_.empty())
    throw CommError("the process group is unusable after an earlier failure: " + failure_, true);
  if (!async && queue_.empty() && !busy_) {
    busy_ = true;  // holds the right to call MPI
    lock.unlock();
    std::exception_ptr error = run(fn);
    lock.lock();
    busy_ = false;
    if (thread_.joinable()) cv_.notify_all();
    lock.unlock();
    if (error) std::rethrow_exception(error);
    return nullptr;  // done already: no handle needed
  }
  auto work = std::make_shared<Work>();
  if (!thread_.joinable()) {
    stop_ = false;
    thread_ = std::thread(&Engine::loop, this);
  }
  queue_.emplace_back(std::move(fn), work);
  cv_.notify_all();
  lock.unlock();
  if (!async) work->wait();
  return work;
}

std::exception_ptr Engine::run(const std::function<void()>& fn) {
  try {
    fn();
    return nullptr;
  } catch (const CommError& e) {
    if (e.fatal) {
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = e.what();
    }
    return std::current_exception();
  } catch (...) {
    return std::current_exception();
  }
}

void Engine::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return (stop_ && queue_.empty()) || (!queue_.empty() && !busy_); });
    if (queue_.empty()) return;
    auto item = std::move(queue_.front());
    queue_.pop_front();
    if (!failure_.empty()) {
      item.second->finish(std::make_exception_ptr(
          CommError("the process group is unusable after an earlier failure: " + failure_, true)));
      continue;
    }
    busy_ = true;
    lock.unlock();
    item.second->finish(run(item.first));
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

void Engine::shutdown() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!thread_.joinable()) return;
  stop_ = true;
  cv_.notify_all();
  lock.unlock();
  thread_.join();
}

bool Engine::failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return !failure_.empty();
}

std::string Engine::failure() {
  std::lock_guard<std::mutex> lock(mutex_);
  return failure_;
}

}  // namespace distml
