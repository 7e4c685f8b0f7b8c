#include "comm/recursive_doubling.h"

#include <algorithm>
#include <cstring>

#include "comm/agreement.h"

namespace distml {

namespace {

// Min and max of the Signature hashes combined so far: equal everywhere means agreement.
struct Header {
  uint64_t lo, hi;
};

}  // namespace

// Ranks beyond the largest power of two fold into a partner first. Each message is a Header
// followed by the payload so far. Receives have room for tune.rd_max_bytes of payload so a
// disagreeing peer never truncates.
bool agree_and_reduce(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig, void* payload,
                      size_t count, DType dtype, ReduceOp op) {
  const size_t bytes = payload ? count * dtype_size(dtype) : 0;
  const size_t message = sizeof(Header) + bytes;
  const size_t capacity = sizeof(Header) + std::max(bytes, tune.rd_max_bytes);
  if (s.a.size() < message) s.a.resize(message);
  if (s.b.size() < capacity) s.b.resize(capacity);
  char* mine = s.a.data();
  char* theirs = s.b.data();
  Header h{signature_hash(sig), signature_hash(sig)};
  std::memcpy(mine, &h, sizeof h);
  if (bytes) std::memcpy(mine + sizeof h, payload, bytes);

  auto received_bytes = [](MPI_Status& st) {
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    return static_cast<size_t>(n);
  };
  auto combine = [&](size_t received) {
    Header other;
    std::memcpy(&other, theirs, sizeof other);
    h.lo = std::min(h.lo, other.lo);
    h.hi = std::max(h.hi, other.hi);
    std::memcpy(mine, &h, sizeof h);
    if (bytes && received == message) reduce_into(mine + sizeof h, theirs + sizeof h, count, dtype, op);
  };
  auto exchange = [&](int peer) {
    MPI_Request r[2] = {t.irecv(theirs, capacity, peer, kTag), t.isend(mine, message, peer, kTag)};
    int peers[2] = {peer, peer};
    MPI_Status st[2];
    t.wait(r, 2, peers, st);
    combine(received_bytes(st[0]));
  };

  const int p = t.size(), rank = t.rank();
  int p2 = 1;
  while (p2 * 2 <= p) p2 *= 2;
  const int folded = 2 * (p - p2);  // ranks below this pair up: odd hands its part to even
  if (rank < folded && rank % 2 == 1) {
    MPI_Request r[2] = {t.isend(mine, message, rank - 1, kTag), t.irecv(theirs, capacity, rank - 1, kTag)};
    int peers[2] = {rank - 1, rank - 1};
    MPI_Status st[2];
    t.wait(r, 2, peers, st);
    std::memcpy(&h, theirs, sizeof h);
    if (bytes && received_bytes(st[1]) == message) std::memcpy(mine + sizeof h, theirs + sizeof h, bytes);
  } else {
    if (rank < folded) {
      MPI_Request r = t.irecv(theirs, capacity, rank + 1, kTag);
      MPI_Status st;
      t.wait(r, rank + 1, &st);
      combine(received_bytes(st));
    }
    const int me = rank < folded ? rank / 2 : rank - folded / 2;
    for (int mask = 1; mask < p2; mask <<= 1) {
      const int other = me ^ mask;
      exchange(other < folded / 2 ? other * 2 : other + folded / 2);
    }
    if (rank < folded) {
      MPI_Request r = t.isend(mine, message, rank + 1, kTag);
      t.wait(r, rank + 1);
    }
  }
  const bool agreed = h.lo == h.hi;
  if (agreed && bytes) std::memcpy(payload, mine + sizeof h, bytes);
  return agreed;
}

}  // namespace distml
