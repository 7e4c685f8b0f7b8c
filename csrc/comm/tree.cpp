#include "comm/tree.h"

#include <vector>

#include "comm/agreement.h"

namespace distml {

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

void root_exchange_segments(Transport& t, char* buf, const Segments& segs, size_t esz, int root, bool to_root) {
  const bool on_root = t.rank() == root;
  std::vector<MPI_Request> requests;
  std::vector<int> peers;
  for (int i = 0; i < t.size(); ++i) {
    if (i == root || (!on_root && i != t.rank())) continue;
    char* at = buf + segs.off[i] * esz;
    const size_t bytes = segs.len[i] * esz;
    const int peer = on_root ? i : root;
    requests.push_back(on_root == to_root ? t.irecv(at, bytes, peer, kTag) : t.isend(at, bytes, peer, kTag));
    peers.push_back(peer);
  }
  t.wait(requests.data(), static_cast<int>(requests.size()), peers.data());
}

}  // namespace distml
