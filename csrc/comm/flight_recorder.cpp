#include "comm/flight_recorder.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <thread>

namespace distml {

namespace {

thread_local int current_bucket = -1;

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* state_name(RecordState s) {
  static const char* names[] = {"queued", "started", "done", "failed"};
  return names[static_cast<int>(s)];
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void on_sigusr1(int) { FlightRecorder::get().wake('s'); }

}  // namespace

FlightRecorder& FlightRecorder::get() {
  static FlightRecorder* recorder = new FlightRecorder();  // never destroyed: the dump thread uses it
  return *recorder;
}

void FlightRecorder::set_capacity(size_t capacity) {
  std::lock_guard<std::mutex> lock(mutex_);
  ring_.assign(capacity, FlightRecord());
}

void FlightRecorder::configure(const std::string& folder, int rank, const std::string& meta_json,
                               const std::string& stacks_path) {
  std::lock_guard<std::mutex> lock(mutex_);
  folder_ = folder;
  rank_ = rank;
  meta_json_ = meta_json;
  stacks_path_ = stacks_path;
}

int FlightRecorder::add_group(const std::vector<int>& world_ranks) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int id = static_cast<int>(groups_.size());
  groups_[id] = world_ranks;
  return id;
}

void FlightRecorder::set_bucket(int bucket) { current_bucket = bucket; }

FlightRecord* FlightRecorder::find(uint64_t id) {
  if (id == 0 || ring_.empty()) return nullptr;
  FlightRecord& r = ring_[id % ring_.size()];
  return r.id == id ? &r : nullptr;
}

uint64_t FlightRecorder::queued(int group, uint64_t seq, const char* op, size_t count, DType dtype, const char* algo,
                                int peer) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ring_.empty()) return 0;
  const uint64_t id = next_id_++;
  FlightRecord& r = ring_[id % ring_.size()];
  r.id = id;
  r.group = group;
  r.seq = seq;
  r.op = op;
  r.count = count;
  r.dtype = dtype;
  r.bytes = count * dtype_size(dtype);
  r.algo = algo;
  r.peer = peer;
  r.bucket = current_bucket;
  r.state = RecordState::queued;
  r.queued = now_s();
  r.started = r.ended = 0;
  r.error.clear();
  return id;
}

void FlightRecorder::started(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (FlightRecord* r = find(id)) {
    r->state = RecordState::started;
    r->started = now_s();
  }
}

void FlightRecorder::done(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (FlightRecord* r = find(id)) {
    r->state = RecordState::done;
    r->ended = now_s();
  }
}

void FlightRecorder::failed(uint64_t id, const std::string& error, bool fatal) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (FlightRecord* r = find(id)) {
      r->state = RecordState::failed;
      r->ended = now_s();
      r->error = error;
    }
  }
  if (!fatal) return;
  // Through the signal, so that Python's faulthandler (registered for SIGUSR1 by the Python layer,
  // chaining to ours) also writes every thread's stack.
  failure_pending_ = true;
  if (wake_pipe_[0] >= 0) kill(getpid(), SIGUSR1);
}

std::string FlightRecorder::json() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  out.precision(17);
  out << "{\"rank\": " << rank_ << ", \"capacity\": " << ring_.size() << ", \"groups\": {";
  const char* comma = "";
  for (const auto& [id, ranks] : groups_) {
    out << comma << "\"" << id << "\": [";
    for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
    out << "]";
    comma = ", ";
  }
  out << "}, \"records\": [";
  comma = "";
  const uint64_t first = next_id_ > ring_.size() ? next_id_ - ring_.size() : 1;
  for (uint64_t id = first; id < next_id_; ++id) {
    const FlightRecord& r = ring_[id % ring_.size()];
    out << comma << "\n {\"id\": " << r.id << ", \"group\": " << r.group << ", \"seq\": " << r.seq
        << ", \"op\": " << quoted(r.op) << ", \"count\": " << r.count << ", \"dtype\": \"" << dtype_name(r.dtype)
        << "\", \"bytes\": " << r.bytes << ", \"algo\": " << quoted(r.algo) << ", \"peer\": " << r.peer
        << ", \"bucket\": " << r.bucket << ", \"state\": \"" << state_name(r.state) << "\", \"queued\": " << r.queued
        << ", \"started\": " << r.started << ", \"ended\": " << r.ended << ", \"error\": " << quoted(r.error) << "}";
    comma = ",";
  }
  out << "]";
  if (!meta_json_.empty()) out << ", \"process\": " << meta_json_;
  out << "}\n";
  return out.str();
}

std::string FlightRecorder::dump(const std::string& reason) {
  std::lock_guard<std::mutex> one_at_a_time(dump_mutex_);
  std::string folder, stacks_path;
  int rank;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    folder = folder_;
    stacks_path = stacks_path_;
    rank = rank_;
  }
  if (folder.empty()) return "";
  std::string stacks;
  if (FILE* f = stacks_path.empty() ? nullptr : std::fopen(stacks_path.c_str(), "r")) {
    char chunk[4096];
    for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, f)) > 0;) stacks.append(chunk, n);
    std::fclose(f);
    truncate(stacks_path.c_str(), 0);  // faulthandler appends: the next stacks start afresh
  }
  // Several peers signal a stalled rank at once: the first dump reads every stack faulthandler
  // wrote, and a later one of the same burst finds none; it keeps the stacks just read.
  if (reason == "SIGUSR1") {
    if (stacks.empty()) stacks = last_stacks_;
    else last_stacks_ = stacks;
  }
  std::string text = json();
  text.insert(text.size() - 2, ", \"reason\": " + quoted(reason) + ", \"dumped\": " + std::to_string(now_s()) +
                                   ", \"stacks\": " + quoted(stacks));
  const std::string path = folder + "/flight-" + std::to_string(rank) + ".json";
  const std::string temporary = path + "." + std::to_string(getpid()) + ".tmp";
  FILE* f = std::fopen(temporary.c_str(), "w");
  if (!f) return "";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written || std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return "";
  }
  return path;
}

void FlightRecorder::wake(char reason) {
  if (wake_pipe_[1] >= 0) {
    ssize_t unused = write(wake_pipe_[1], &reason, 1);  // async-signal-safe
    (void)unused;
  }
}

void FlightRecorder::dump_loop() {
  // One dump for all the wake-ups that arrived together.
  for (char reasons[64]; read(wake_pipe_[0], reasons, sizeof reasons) > 0;)
    dump(failure_pending_.exchange(false) ? "a collective failed" : "SIGUSR1");
}

bool FlightRecorder::install_signal_handler() {
  if (wake_pipe_[0] >= 0) return true;
  if (pipe(wake_pipe_) != 0) return false;
  fcntl(wake_pipe_[1], F_SETFL, O_NONBLOCK);  // a signal handler must never block
  fcntl(wake_pipe_[0], F_SETFD, FD_CLOEXEC);
  fcntl(wake_pipe_[1], F_SETFD, FD_CLOEXEC);
  std::thread(&FlightRecorder::dump_loop, this).detach();
  struct sigaction action = {};
  action.sa_handler = on_sigusr1;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  return sigaction(SIGUSR1, &action, nullptr) == 0;
}

}  // namespace distml
