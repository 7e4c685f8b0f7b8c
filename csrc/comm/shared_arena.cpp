#include "comm/shared_arena.h"

#include <dirent.h>
#include <fcntl.h>
#include <immintrin.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <sstream>
#include <thread>

namespace distml {

namespace {

constexpr const char* kPrefix = "distml-";

// A job killed while creating an arena (between create and unlink) leaves its name behind:
// remove the names whose creating process no longer exists.
void remove_stale_names() {
  DIR* dir = opendir("/dev/shm");
  if (!dir) return;
  while (dirent* entry = readdir(dir)) {
    int pid = 0, serial = 0;
    const std::string name = entry->d_name;
    if (name.rfind(kPrefix, 0) == 0 && std::sscanf(name.c_str() + std::strlen(kPrefix), "%d-%d", &pid, &serial) == 2 &&
        kill(pid, 0) == -1 && errno == ESRCH)
      shm_unlink(("/" + name).c_str());
  }
  closedir(dir);
}

}  // namespace

// Rank 0 creates a POSIX shared-memory object, the others map it by name, and once everyone has
// it mapped rank 0 unlinks the name: the memory lives exactly as long as the mappings, so a
// crashed job leaves nothing behind in /dev/shm.
std::unique_ptr<SharedArena> SharedArena::create(const Transport& t, size_t half_bytes) {
  static_assert(sizeof(Control) <= kHeader, "the control line must fit its header");
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters in shared memory must be lock-free");
  static int created = 0;
  const size_t bytes = t.size() * (kHeader + 2 * half_bytes);
  char name[64] = {};
  int fd = -1;
  if (t.rank() == 0) {
    remove_stale_names();
    std::snprintf(name, sizeof name, "/%s%d-%d", kPrefix, static_cast<int>(getpid()), created++);
    fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    // fallocate, unlike ftruncate, fails now when /dev/shm is too small instead of SIGBUS later.
    if (fd >= 0 && posix_fallocate(fd, 0, static_cast<off_t>(bytes)) != 0) {
      close(fd);
      shm_unlink(name);
      fd = -1;
    }
    if (fd < 0) name[0] = '\0';
  }
  MPI_Bcast(name, sizeof name, MPI_CHAR, 0, t.comm());
  if (t.rank() != 0 && name[0]) fd = shm_open(name, O_RDWR, 0);
  void* base = MAP_FAILED;
  if (fd >= 0) {
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
  }
  int mapped = base != MAP_FAILED, everywhere = 0;
  if (mapped) new (static_cast<char*>(base) + t.rank() * (kHeader + 2 * half_bytes)) Control{};
  MPI_Allreduce(&mapped, &everywhere, 1, MPI_INT, MPI_MIN, t.comm());  // also: every Control is built
  if (t.rank() == 0 && name[0]) shm_unlink(name);
  if (!everywhere) {
    if (mapped) munmap(base, bytes);
    return nullptr;
  }
  cpu_set_t cores;
  const bool oversubscribed = sched_getaffinity(0, sizeof cores, &cores) == 0 && CPU_COUNT(&cores) < t.size();
  return std::unique_ptr<SharedArena>(
      new SharedArena(static_cast<char*>(base), half_bytes, t.size(), t.rank(), oversubscribed ? 0 : 64));
}

SharedArena::SharedArena(char* base, size_t half_bytes, int size, int rank, int spin_polls)
    : base_(base), half_bytes_(half_bytes), size_(size), rank_(rank), spin_polls_(spin_polls) {}

SharedArena::~SharedArena() { munmap(base_, size_ * (kHeader + 2 * half_bytes_)); }

uint64_t SharedArena::begin_round(const Signature* sig) {
  const uint64_t round = ++rounds_;
  if (sig) control(rank_).posted[round % 2] = *sig;
  return round;
}

char* SharedArena::half(int rank, uint64_t round) const {
  return part(rank) + kHeader + (round % 2) * half_bytes_;
}

bool SharedArena::agreed(uint64_t round) const {
  const Signature& first = control(0).posted[round % 2];
  for (int r = 1; r < size_; ++r)
    if (std::memcmp(&control(r).posted[round % 2], &first, sizeof first) != 0) return false;
  return true;
}

std::vector<Signature> SharedArena::signatures(uint64_t round) const {
  std::vector<Signature> all;
  for (int r = 0; r < size_; ++r) all.push_back(control(r).posted[round % 2]);
  return all;
}

void SharedArena::sync(Transport& t) {
  using clock = std::chrono::steady_clock;
  const uint64_t target = ++syncs_;
  control(rank_).arrived.store(target, std::memory_order_release);
  auto all_arrived = [&] {
    for (int r = 0; r < size_; ++r)
      if (control(r).arrived.load(std::memory_order_acquire) < target) return false;
    return true;
  };
  // Spin briefly (peers on other cores arrive within a microsecond), then yield the core (ranks
  // may outnumber cores), and once the wait is clearly long sleep between polls.
  const auto start = clock::now();
  for (long polls = 0; !all_arrived(); ++polls) {
    if (polls < spin_polls_) {
      _mm_pause();
      continue;
    }
    // Drive MPI's progress engine: a peer's earlier send to this rank may need it to finish
    // before that peer can reach this sync.
    int unused = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, t.comm(), &unused, MPI_STATUS_IGNORE);
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > t.timeout()) {
      std::ostringstream message;
      message << "timed out after " << t.timeout() << " s waiting for rank(s) ";
      const char* separator = "";
      for (int r = 0; r < size_; ++r)
        if (control(r).arrived.load(std::memory_order_acquire) < target) {
          message << separator << t.world_rank(r);
          separator = ", ";
        }
      message << kTimeoutAdvice;
      t.fail(message.str(), true);
    }
    if (waited < 0.05) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(waited < 1.0 ? 100 : 1000));
      if (polls % 16 == 0)  // a peer this sync waits for may have left the job
        t.check_departures(size_, [&](int r) { return control(r).arrived.load() < target ? r : -1; });
    }
  }
}

}  // namespace distml
