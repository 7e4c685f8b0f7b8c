#include "comm/algorithms.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace distml {

namespace {

constexpr int kTag = 0;  // collectives; send/recv use 1 + 2 * tag and 2 + 2 * tag

// Min and max of the Signature hashes combined so far: equal everywhere means agreement (the
// exact Signatures are exchanged only to word the error).
struct Header {
  uint64_t lo, hi;
};

uint64_t hash(const Signature& s) {  // FNV-1a over the fields
  uint64_t h = 1469598103934665603ull;
  for (int64_t v : {s.collective, s.dtype, s.op, s.count, s.root}) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
  return h;
}

const char* collective_name(int64_t c) {
  static const char* names[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "reduce",
                                "gather",     "scatter",   "barrier",    "send"};
  return c >= 0 && c <= static_cast<int64_t>(Collective::send) ? names[c] : "unknown";
}

std::string describe(const Signature& s) {
  std::ostringstream out;
  auto c = static_cast<Collective>(s.collective);
  out << collective_name(s.collective);
  if (c == Collective::barrier) return out.str() + "()";
  out << "(" << dtype_name(static_cast<DType>(s.dtype)) << "[" << s.count << "]";
  if (c == Collective::all_reduce || c == Collective::reduce_scatter || c == Collective::reduce)
    out << ", op=" << reduce_op_name(static_cast<ReduceOp>(s.op));
  if (c == Collective::broadcast || c == Collective::reduce || c == Collective::gather ||
      c == Collective::scatter)
    out << ", root=" << s.root;
  out << ")";
  return out.str();
}

// Every rank raises the same message from the Signatures of all ranks.
[[noreturn]] void raise_mismatch(Transport& t, const std::vector<Signature>& all) {
  std::ostringstream out;
  out << "ranks disagree on the collective or its tensors:";
  for (int i = 0; i < t.size(); ++i) out << (i ? "; " : " ") << "rank " << t.world_rank(i) << " called " << describe(all[i]);
  t.fail(out.str(), false);
}

// Without an arena every rank first learns every Signature over MPI.
[[noreturn]] void raise_mismatch(Transport& t, const Signature& mine) {
  const int p = t.size();
  std::vector<Signature> all(p);
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  all[t.rank()] = mine;
  for (int i = 0; i < p; ++i) {
    if (i == t.rank()) continue;
    requests.push_back(t.irecv(&all[i], sizeof(Signature), i, kTag));
    requests.push_back(t.isend(&mine, sizeof(Signature), i, kTag));
    peers.insert(peers.end(), {i, i});
  }
  t.wait(requests.data(), static_cast<int>(requests.size()), peers.data());
  raise_mismatch(t, all);
}

// The sync after a round whose Signature was posted: raise unless every rank posted the same.
void sync_and_agree(Transport& t, SharedArena& arena, uint64_t round) {
  arena.sync(t);
  if (!arena.agreed(round)) raise_mismatch(t, arena.signatures(round));
}

// Recursive doubling over all ranks (ranks beyond the largest power of two fold into a
// partner first). Combines the Signatures, and when `payload` is given allreduces it on the
// way; the result is written back only if every rank agreed. Returns whether they agreed.
// Receives have room for tune.rd_max_bytes of payload so a disagreeing peer never truncates.
bool agree_and_reduce(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig, void* payload,
                      size_t count, DType dtype, ReduceOp op) {
  const size_t bytes = payload ? count * dtype_size(dtype) : 0;
  const size_t message = sizeof(Header) + bytes;
  const size_t capacity = sizeof(Header) + std::max(bytes, tune.rd_max_bytes);
  if (s.a.size() < message) s.a.resize(message);
  if (s.b.size() < capacity) s.b.resize(capacity);
  char* mine = s.a.data();
  char* theirs = s.b.data();
  Header h{hash(sig), hash(sig)};
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

void check_agreement(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig) {
  if (s.shared) {
    sync_and_agree(t, *s.shared, s.shared->begin_round(&sig));
  } else if (!agree_and_reduce(t, s, tune, sig, nullptr, 0, DType::u8, ReduceOp::sum)) {
    raise_mismatch(t, sig);
  }
}

// p contiguous pieces of a buffer, in elements; each ring step moves one piece.
struct Segments {
  std::vector<size_t> off, len;
  size_t longest() const { return len.empty() ? 0 : *std::max_element(len.begin(), len.end()); }
};

Segments balanced(size_t count, int p) {
  Segments s;
  for (int i = 0; i < p; ++i) {
    s.off.push_back(count * i / p);
    s.len.push_back(count * (i + 1) / p - count * i / p);
  }
  return s;
}

Segments equal(size_t each, int p) {
  Segments s;
  for (int i = 0; i < p; ++i) {
    s.off.push_back(each * i);
    s.len.push_back(each);
  }
  return s;
}

// A ring schedule: (p - 1) steps, each segment cut into the same number of pipeline chunks.
// Task t is chunk t % chunks of step t / chunks; a chunk received at step s is sent on at s + 1.
struct Ring {
  Ring(const Transport& t, const Segments& segs, size_t chunk_elems)
      : p(t.size()), rank(t.rank()), right((rank + 1) % p), left((rank + p - 1) % p), segs(segs) {
    chunks = std::max<size_t>(1, (segs.longest() + chunk_elems - 1) / chunk_elems);
    tasks = static_cast<size_t>(p - 1) * chunks;
    chunk_cap = (segs.longest() + chunks - 1) / chunks;
  }
  int segment(long shift, size_t task) const {  // (rank - step - shift) mod p
    long v = (rank - static_cast<long>(task / chunks) - shift) % p;
    return static_cast<int>(v < 0 ? v + p : v);
  }
  void piece(int seg, size_t task, size_t& off, size_t& len) const {
    const size_t c = task % chunks, n = segs.len[seg];
    off = segs.off[seg] + n * c / chunks;
    len = n * (c + 1) / chunks - n * c / chunks;
  }
  int p, rank, right, left;
  const Segments& segs;
  size_t chunks, tasks, chunk_cap;
};

// Afterwards rank r holds segment r reduced over all ranks (other segments hold partial sums).
// Step s sends segment r-s-1 and reduces the received segment r-s-2 into buf.
void ring_reduce_scatter(Transport& t, Scratch& s, const Tuning& tune, char* buf, const Segments& segs,
                         DType dtype, ReduceOp op) {
  if (t.size() == 1) return;
  const size_t esz = dtype_size(dtype);
  Ring ring(t, segs, std::max<size_t>(1, tune.chunk_bytes / esz));
  const size_t window = std::min<size_t>(std::max(tune.window, 1), ring.tasks);
  if (s.b.size() < window * ring.chunk_cap * esz) s.b.resize(window * ring.chunk_cap * esz);
  std::vector<MPI_Request> sends(ring.tasks, MPI_REQUEST_NULL), recvs(window, MPI_REQUEST_NULL);
  std::vector<int> rights(ring.tasks, ring.right);
  auto slot = [&](size_t task) { return s.b.data() + (task % window) * ring.chunk_cap * esz; };
  auto post_recv = [&](size_t task) {
    size_t off, len;
    ring.piece(ring.segment(2, task), task, off, len);
    recvs[task % window] = t.irecv(slot(task), len * esz, ring.left, kTag);
  };
  auto post_send = [&](size_t task) {
    size_t off, len;
    ring.piece(ring.segment(1, task), task, off, len);
    sends[task] = t.isend(buf + off * esz, len * esz, ring.right, kTag);
  };
  for (size_t task = 0; task < window; ++task) post_recv(task);
  for (size_t task = 0; task < ring.chunks; ++task) post_send(task);
  for (size_t task = 0; task < ring.tasks; ++task) {
    t.wait(recvs[task % window], ring.left);
    size_t off, len;
    ring.piece(ring.segment(2, task), task, off, len);
    reduce_into(buf + off * esz, slot(task), len, dtype, op);
    if (task + window < ring.tasks) post_recv(task + window);
    if (task + ring.chunks < ring.tasks) post_send(task + ring.chunks);
  }
  t.wait(sends.data(), static_cast<int>(sends.size()), rights.data());
}

// Starting from rank r holding segment r, every rank ends with all segments.
// Step s sends segment r-s and receives segment r-s-1 straight into buf.
void ring_allgather(Transport& t, const Tuning& tune, char* buf, const Segments& segs, size_t esz) {
  if (t.size() == 1) return;
  Ring ring(t, segs, std::max<size_t>(1, tune.chunk_bytes / esz));
  std::vector<MPI_Request> sends(ring.tasks, MPI_REQUEST_NULL), recvs(ring.tasks, MPI_REQUEST_NULL);
  std::vector<int> rights(ring.tasks, ring.right);
  for (size_t task = 0; task < ring.tasks; ++task) {
    size_t off, len;
    ring.piece(ring.segment(1, task), task, off, len);
    recvs[task] = t.irecv(buf + off * esz, len * esz, ring.left, kTag);
  }
  auto post_send = [&](size_t task) {
    size_t off, len;
    ring.piece(ring.segment(0, task), task, off, len);
    sends[task] = t.isend(buf + off * esz, len * esz, ring.right, kTag);
  };
  for (size_t task = 0; task < ring.chunks; ++task) post_send(task);
  for (size_t task = 0; task < ring.tasks; ++task) {
    t.wait(recvs[task], ring.left);
    if (task + ring.chunks < ring.tasks) post_send(task + ring.chunks);
  }
  t.wait(sends.data(), static_cast<int>(sends.size()), rights.data());
}

// Binomial tree from root: log2(p) rounds, for latency-bound sizes.
void tree_broadcast(Transport& t, char* buf, size_t bytes, int root) {
  const int p = t.size(), vr = (t.rank() - root + p) % p;
  int mask = 1;
  for (; mask < p; mask <<= 1) {
    if (vr & mask) {
      const int parent = (vr - mask + root) % p;
      MPI_Request r = t.irecv(buf, bytes, parent, kTag);
      t.wait(r, parent);
      break;
    }
  }
  std::vector<MPI_Request> sends;
  std::vector<int> children;
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (vr + mask < p) {
      children.push_back((vr + mask + root) % p);
      sends.push_back(t.isend(buf, bytes, children.back(), kTag));
    }
  }
  t.wait(sends.data(), static_cast<int>(sends.size()), children.data());
}

// Point-to-point pieces between root and everyone: rank i's piece is at base + i * bytes.
// Root receives (gather) or sends (scatter) all of them; other ranks exchange their one piece.
void root_exchange(Transport& t, char* root_base, char* piece, size_t bytes, int root, bool to_root) {
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  if (t.rank() == root) {
    for (int i = 0; i < t.size(); ++i) {
      if (i == root) continue;
      char* at = root_base + i * bytes;
      requests.push_back(to_root ? t.irecv(at, bytes, i, kTag) : t.isend(at, bytes, i, kTag));
      peers.push_back(i);
    }
  } else {
    requests.push_back(to_root ? t.isend(piece, bytes, root, kTag) : t.irecv(piece, bytes, root, kTag));
    peers.push_back(root);
  }
  t.wait(requests.data(), static_cast<int>(requests.size()), peers.data());
}

// Allreduce through the shared arena. Small buffers take one round: every rank copies its buffer
// in, and after one sync each reduces all of them in rank order (the same order everywhere, so
// the results agree bit for bit). Larger ones go in chunks, one round and one sync each, with
// rank r's segment of every chunk at the same place in each half (slot r): a rank copies in the
// segments that others reduce; after the sync it reduces its own segment from the peers' copies
// straight into its buffer, publishes it in its slot, copies in the next chunk, and after the
// next sync copies the peers' reduced segments out.
void shared_allreduce(Transport& t, SharedArena& arena, const Tuning& tune, const Signature& sig, char* buf,
                      size_t count, DType dtype, ReduceOp op) {
  const int p = t.size(), me = t.rank();
  const size_t esz = dtype_size(dtype), bytes = count * esz;
  if (bytes <= std::min(tune.shared_one_round_bytes, arena.half_bytes())) {
    const uint64_t round = arena.begin_round(&sig);
    std::memcpy(arena.half(me, round), buf, bytes);
    sync_and_agree(t, arena, round);
    std::memcpy(buf, arena.half(0, round), bytes);
    for (int r = 1; r < p; ++r) reduce_into(buf, arena.half(r, round), count, dtype, op);
    return;
  }
  const size_t slot_elems = std::max<size_t>(1, std::min(tune.shared_chunk_bytes, arena.half_bytes()) / esz / p);
  const size_t chunk = slot_elems * p, chunks = (count + chunk - 1) / chunk;
  auto slot = [&](int owner, uint64_t round, int r) { return arena.half(owner, round) + r * slot_elems * esz; };
  auto segments = [&](size_t k) { return balanced(std::min(chunk, count - k * chunk), p); };
  auto copy_in = [&](size_t k) {
    const uint64_t round = arena.begin_round(k == 0 ? &sig : nullptr);
    const Segments segs = segments(k);
    for (int r = 0; r < p; ++r)
      if (r != me) std::memcpy(slot(me, round, r), buf + (k * chunk + segs.off[r]) * esz, segs.len[r] * esz);
    return round;
  };
  uint64_t round = copy_in(0);
  sync_and_agree(t, arena, round);
  for (size_t k = 0; k < chunks; ++k) {
    const Segments segs = segments(k);
    char* data = buf + k * chunk * esz;
    char* mine = data + segs.off[me] * esz;
    for (int r = 0; r < p; ++r)
      if (r != me) reduce_into(mine, slot(r, round, me), segs.len[me], dtype, op);
    std::memcpy(slot(me, round, me), mine, segs.len[me] * esz);
    const uint64_t next = k + 1 < chunks ? copy_in(k + 1) : 0;
    arena.sync(t);
    for (int r = 0; r < p; ++r)
      if (r != me) std::memcpy(data + segs.off[r] * esz, slot(r, round, r), segs.len[r] * esz);
    round = next;
  }
}

Signature signature(Collective c, DType dtype, size_t count, ReduceOp op = ReduceOp::sum, int root = 0) {
  return {static_cast<int64_t>(c), static_cast<int64_t>(dtype), static_cast<int64_t>(op),
          static_cast<int64_t>(count), root};
}

}  // namespace

void allreduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype,
               ReduceOp op) {
  if (t.size() == 1) return;
  const Signature sig = signature(Collective::all_reduce, dtype, count, op);
  const size_t bytes = count * dtype_size(dtype);
  Algo algo = tune.allreduce;
  if (algo == Algo::automatic)
    algo = s.shared ? Algo::shared_memory : bytes <= tune.rd_max_bytes ? Algo::recursive_doubling : Algo::ring;
  if (algo == Algo::shared_memory && !s.shared)
    t.fail("the shared-memory allreduce needs every rank of the group on one host, with shared memory enabled",
           false);
  char* data = static_cast<char*>(buf);
  switch (algo) {
    case Algo::shared_memory:
      shared_allreduce(t, *s.shared, tune, sig, data, count, dtype, op);
      break;
    case Algo::recursive_doubling:
      if (s.shared) check_agreement(t, s, tune, sig);  // the same check as every other collective
      if (!agree_and_reduce(t, s, tune, sig, buf, count, dtype, op)) raise_mismatch(t, sig);
      break;
    default: {
      check_agreement(t, s, tune, sig);
      const Segments segs = balanced(count, t.size());
      ring_reduce_scatter(t, s, tune, data, segs, dtype, op);
      ring_allgather(t, tune, data, segs, dtype_size(dtype));
    }
  }
}

void broadcast(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype, int root) {
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::broadcast, dtype, count, ReduceOp::sum, root));
  const size_t esz = dtype_size(dtype);
  char* data = static_cast<char*>(buf);
  if (count * esz <= tune.tree_max_bytes || count < static_cast<size_t>(t.size())) {
    tree_broadcast(t, data, count * esz, root);
    return;
  }
  // Large: scatter the segments from root, then a ring allgather (bandwidth ~2x the size).
  const Segments segs = balanced(count, t.size());
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  for (int i = 0; i < t.size(); ++i) {
    const bool mine = i == t.rank();
    if (i == root || (t.rank() != root && !mine)) continue;
    char* at = data + segs.off[i] * esz;
    requests.push_back(t.rank() == root ? t.isend(at, segs.len[i] * esz, i, kTag)
                                        : t.irecv(at, segs.len[i] * esz, root, kTag));
    peers.push_back(t.rank() == root ? i : root);
  }
  t.wait(requests.data(), static_cast<int>(requests.size()), peers.data());
  ring_allgather(t, tune, data, segs, esz);
}

void allgather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count,
               DType dtype) {
  const size_t esz = dtype_size(dtype);
  char* slot = static_cast<char*>(out) + t.rank() * count * esz;
  if (in != slot) std::memmove(slot, in, count * esz);
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::all_gather, dtype, count));
  ring_allgather(t, tune, static_cast<char*>(out), equal(count, t.size()), esz);
}

void reduce_scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count,
                    DType dtype, ReduceOp op) {
  const size_t esz = dtype_size(dtype), bytes = count * esz;
  if (t.size() > 1) check_agreement(t, s, tune, signature(Collective::reduce_scatter, dtype, count, op));
  // The ring reduces in place, and the input must survive: work on a copy.
  s.work.assign(static_cast<const char*>(in), static_cast<const char*>(in) + t.size() * bytes);
  ring_reduce_scatter(t, s, tune, s.work.data(), equal(count, t.size()), dtype, op);
  std::memcpy(out, s.work.data() + t.rank() * bytes, bytes);
}

void reduce(Transport& t, Scratch& s, const Tuning& tune, void* buf, size_t count, DType dtype, ReduceOp op,
            int root) {
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::reduce, dtype, count, op, root));
  const size_t esz = dtype_size(dtype);
  // Reduce-scatter (on a copy off root), then every rank hands its reduced segment to root.
  if (t.rank() != root) s.work.assign(static_cast<char*>(buf), static_cast<char*>(buf) + count * esz);
  char* work = t.rank() == root ? static_cast<char*>(buf) : s.work.data();
  const Segments segs = balanced(count, t.size());
  ring_reduce_scatter(t, s, tune, work, segs, dtype, op);
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  for (int i = 0; i < t.size(); ++i) {
    if (i == root || (t.rank() != root && i != t.rank())) continue;
    char* at = work + segs.off[i] * esz;
    requests.push_back(t.rank() == root ? t.irecv(at, segs.len[i] * esz, i, kTag)
                                        : t.isend(at, segs.len[i] * esz, root, kTag));
    peers.push_back(t.rank() == root ? i : root);
  }
  t.wait(requests.data(), static_cast<int>(requests.size()), peers.data());
}

void gather(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root) {
  const size_t bytes = count * dtype_size(dtype);
  if (t.rank() == root) {
    char* slot = static_cast<char*>(out) + root * bytes;
    if (in != slot) std::memmove(slot, in, bytes);
  }
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::gather, dtype, count, ReduceOp::sum, root));
  root_exchange(t, static_cast<char*>(out), const_cast<char*>(static_cast<const char*>(in)), bytes, root, true);
}

void scatter(Transport& t, Scratch& s, const Tuning& tune, const void* in, void* out, size_t count, DType dtype, int root) {
  const size_t bytes = count * dtype_size(dtype);
  if (t.rank() == root) {
    const char* slot = static_cast<const char*>(in) + root * bytes;
    if (out != slot) std::memmove(out, slot, bytes);
  }
  if (t.size() == 1) return;
  check_agreement(t, s, tune, signature(Collective::scatter, dtype, count, ReduceOp::sum, root));
  root_exchange(t, const_cast<char*>(static_cast<const char*>(in)), static_cast<char*>(out), bytes, root, false);
}

void barrier(Transport& t, Scratch& s, const Tuning& tune) {
  if (t.size() > 1) check_agreement(t, s, tune, signature(Collective::barrier, DType::u8, 0));
}

static int p2p_tag(const Transport& t, int tag, int which) {
  int* upper = nullptr;
  int found = 0;
  MPI_Comm_get_attr(t.comm(), MPI_TAG_UB, &upper, &found);
  const long max_tag = found ? (static_cast<long>(*upper) - 2) / 2 : 16382;
  if (tag < 0 || tag > max_tag)
    t.fail("tag must be in [0, " + std::to_string(max_tag) + "], got " + std::to_string(tag), false);
  return 1 + 2 * tag + which;
}

void send(Transport& t, const void* buf, size_t count, DType dtype, int dst, int tag) {
  const Signature sig = signature(Collective::send, dtype, count);
  MPI_Request r[2] = {t.isend(&sig, sizeof sig, dst, p2p_tag(t, tag, 0)),
                      t.isend(buf, count * dtype_size(dtype), dst, p2p_tag(t, tag, 1))};
  int peers[2] = {dst, dst};
  t.wait(r, 2, peers);
}

int recv(Transport& t, void* buf, size_t count, DType dtype, int src, int tag) {
  const Signature expected = signature(Collective::send, dtype, count);
  Signature got;
  MPI_Status st;
  MPI_Request r = t.irecv(&got, sizeof got, src, p2p_tag(t, tag, 0));
  t.wait(r, src, &st);
  src = st.MPI_SOURCE;
  if (std::memcmp(&got, &expected, sizeof got) != 0)
    t.fail("expected " + describe(expected).replace(0, 4, "recv") + " from rank " +
               std::to_string(t.world_rank(src)) + " but it called " + describe(got),
           true);
  r = t.irecv(buf, count * dtype_size(dtype), src, p2p_tag(t, tag, 1));
  t.wait(r, src);
  return src;
}

}  // namespace distml
