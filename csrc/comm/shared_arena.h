// Memory shared by the ranks of a group that all live on one host, for the collectives that move
// data with plain loads and stores instead of MPI messages.
//
// Each rank owns a control line (a counter and the Signature it posted) and two data halves.
// The collectives run in rounds: round r writes this rank's half r % 2 and peers read it after
// the next sync. A sync is a barrier on the counters, so a rank that starts writing half h again
// (round r + 2) after a sync that follows round r + 1's writes knows every peer finished the
// reads it did before that sync. A rank that does not arrive makes the others raise, naming it,
// after the timeout.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "comm/transport.h"

namespace distml {

// What one rank asked for; every field must match across ranks (root and op where they apply).
struct Signature {
  int64_t collective, dtype, op, count, root;
};

class SharedArena {
 public:
  // Collective over t's communicator, whose ranks must all share one host. Returns null on every
  // rank when any rank cannot map the memory (the collectives then go over MPI).
  static std::unique_ptr<SharedArena> create(const Transport& t, size_t half_bytes);
  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  size_t half_bytes() const { return half_bytes_; }
  // Start the next round; sig (if given) is posted for the ranks to compare after the next sync.
  uint64_t begin_round(const Signature* sig);
  // rank's half for round.
  char* half(int rank, uint64_t round) const;
  // Whether every rank posted the same Signature in round.
  bool agreed(uint64_t round) const;
  // The Signatures every rank posted in round, in rank order.
  std::vector<Signature> signatures(uint64_t round) const;
  // Wait until every rank reached the same sync; raise on timeout naming the missing ranks.
  void sync(Transport& t);

 private:
  struct Control {
    std::atomic<uint64_t> arrived;  // syncs this rank entered
    alignas(64) Signature posted[2];
  };
  static constexpr size_t kHeader = 4096;  // the Control, padded to keep the halves page-aligned

  SharedArena(char* base, size_t half_bytes, int size, int rank, int spin_polls);
  char* part(int rank) const { return base_ + rank * (kHeader + 2 * half_bytes_); }
  Control& control(int rank) const { return *reinterpret_cast<Control*>(part(rank)); }

  char* base_;
  size_t half_bytes_;
  int size_, rank_;
  int spin_polls_;  // polls before a waiting rank yields its core: none when ranks outnumber cores
  uint64_t rounds_ = 0, syncs_ = 0;
};

}  // namespace distml
