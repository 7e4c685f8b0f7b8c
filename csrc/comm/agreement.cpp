#include "comm/agreement.h"

#include <sstream>
#include <vector>

#include "comm/recursive_doubling.h"

namespace distml {

namespace {

const char* collective_name(int64_t c) {
  static const char* names[] = {"all_reduce", "broadcast", "all_gather", "reduce_scatter", "reduce",
                                "gather",     "scatter",   "barrier",    "send"};
  return c >= 0 && c <= static_cast<int64_t>(Collective::send) ? names[c] : "unknown";
}

// Every rank raises the same message from the Signatures of all ranks.
[[noreturn]] void raise_mismatch(Transport& t, const std::vector<Signature>& all) {
  std::ostringstream out;
  out << "ranks disagree on the collective or its tensors:";
  for (int i = 0; i < t.size(); ++i) out << (i ? "; " : " ") << "rank " << t.world_rank(i) << " called " << describe(all[i]);
  t.fail(out.str(), false);
}

}  // namespace

Signature signature(Collective c, DType dtype, size_t count, ReduceOp op, int root) {
  return {static_cast<int64_t>(c), static_cast<int64_t>(dtype), static_cast<int64_t>(op),
          static_cast<int64_t>(count), root};
}

uint64_t signature_hash(const Signature& s) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t v : {s.collective, s.dtype, s.op, s.count, s.root}) h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
  return h;
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

void sync_and_agree(Transport& t, SharedArena& arena, uint64_t round) {
  arena.sync(t);
  if (!arena.agreed(round)) raise_mismatch(t, arena.signatures(round));
}

void check_agreement(Transport& t, Scratch& s, const Tuning& tune, const Signature& sig) {
  if (s.shared) {
    sync_and_agree(t, *s.shared, s.shared->begin_round(&sig));
  } else if (!agree_and_reduce(t, s, tune, sig, nullptr, 0, DType::u8, ReduceOp::sum)) {
    raise_mismatch(t, sig);
  }
}

}  // namespace distml
