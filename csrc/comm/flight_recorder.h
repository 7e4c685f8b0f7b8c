// The flight recorder: the last N collectives of this process (PyTorch's Flight Recorder, Horovod's
// stall inspector), so that after a hang or failure every rank can say which collective it last
// finished and which it waits in. ProcessGroup::submit records each collective when it is queued,
// started and done (or failed); a record costs a lock and a few stores.
//
// dump() writes the records as JSON. It runs on a thread of its own, woken by SIGUSR1 (through
// an async-signal-safe pipe write) or by a failed collective, so that a rank whose threads are
// all blocked in MPI still dumps.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dtype.h"

namespace distml {

enum class RecordState : int { queued, started, done, failed };

struct FlightRecord {
  uint64_t id = 0;    // process-wide, increasing: a record's slot is id % capacity
  int group = 0;      // FlightRecorder::add_group's id
  uint64_t seq = 0;   // this collective's number in its group (the same on every member)
  const char* op = "";
  size_t count = 0;   // elements
  DType dtype = DType::f32;
  size_t bytes = 0;
  const char* algo = "";
  int peer = -1;      // root, source or destination (group rank), where there is one
  int bucket = -1;    // DDP's bucket index, else -1
  RecordState state = RecordState::queued;
  double queued = 0, started = 0, ended = 0;  // seconds since the epoch
  std::string error;
};

class FlightRecorder {
 public:
  static FlightRecorder& get();

  // Keep the last `capacity` records (0: record nothing).
  void set_capacity(size_t capacity);
  // Where dump() writes (folder/flight-<rank>.json), what it adds about this process, and the
  // file where faulthandler writes the Python stacks on SIGUSR1 (read into the dump, then emptied).
  void configure(const std::string& folder, int rank, const std::string& meta_json, const std::string& stacks_path);
  // A new group of these world ranks; returns its id.
  int add_group(const std::vector<int>& world_ranks);
  // DDP's bucket for the collectives queued from this thread until cleared (-1).
  void set_bucket(int bucket);

  // Returns the record's id (0 when recording is off).
  uint64_t queued(int group, uint64_t seq, const char* op, size_t count, DType dtype, const char* algo, int peer);
  void started(uint64_t id);
  void done(uint64_t id);
  // Marks the record failed; a fatal failure also raises SIGUSR1 in this process (a dump with
  // every thread's stack).
  void failed(uint64_t id, const std::string& error, bool fatal);

  // The records, oldest first, and the groups, as JSON.
  std::string json();
  // Write json() to folder/flight-<rank>.json (atomically); returns the path or "" when unconfigured.
  std::string dump(const std::string& reason);
  // Start the dump thread and route SIGUSR1 to it (once). Returns false if the signal was taken.
  bool install_signal_handler();
  // Async-signal-safe: wake the dump thread.
  void wake(char reason);

 private:
  FlightRecorder() = default;
  FlightRecord* find(uint64_t id);  // under mutex_; null once overwritten
  void dump_loop();

  std::mutex mutex_;
  // One dump at a time: the SIGUSR1 thread and a failing rank's own dump would write one temporary file.
  std::mutex dump_mutex_;
  std::string last_stacks_;  // under dump_mutex_: the stacks the last SIGUSR1 made faulthandler write
  std::vector<FlightRecord> ring_;
  uint64_t next_id_ = 1;
  std::map<int, std::vector<int>> groups_;
  std::string folder_, meta_json_, stacks_path_;
  int rank_ = 0;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<bool> failure_pending_{false};
};

}  // namespace distml
