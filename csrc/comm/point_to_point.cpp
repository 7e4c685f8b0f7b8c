// send and recv: the Signature goes first, so a recv that expects another size or dtype raises
// naming the sender's call instead of truncating or misreading the data.
#include <cstring>
#include <string>

#include "comm/agreement.h"

namespace distml {

namespace {

// Two tags per user tag, above the collectives' kTag: the Signature, then the data.
int p2p_tag(const Transport& t, int tag, int which) {
  int* upper = nullptr;
  int found = 0;
  MPI_Comm_get_attr(t.comm(), MPI_TAG_UB, &upper, &found);
  const long max_tag = found ? (static_cast<long>(*upper) - 2) / 2 : 16382;
  if (tag < 0 || tag > max_tag)
    t.fail("tag must be in [0, " + std::to_string(max_tag) + "], got " + std::to_string(tag), false);
  return 1 + 2 * tag + which;
}

}  // namespace

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
