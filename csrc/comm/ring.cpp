#include "comm/ring.h"

#include <algorithm>

#include "comm/agreement.h"

namespace distml {

size_t Segments::longest() const { return len.empty() ? 0 : *std::max_element(len.begin(), len.end()); }

Segments Segments::balanced(size_t count, int p) {
  Segments s;
  for (int i = 0; i < p; ++i) {
    s.off.push_back(count * i / p);
    s.len.push_back(count * (i + 1) / p - count * i / p);
  }
  return s;
}

Segments Segments::equal(size_t each, int p) {
  Segments s;
  for (int i = 0; i < p; ++i) {
    s.off.push_back(each * i);
    s.len.push_back(each);
  }
  return s;
}

namespace {

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

}  // namespace

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

}  // namespace distml
