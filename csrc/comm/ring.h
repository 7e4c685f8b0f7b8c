// The pipelined ring: each of the p ranks sends to its right neighbour and receives from its
// left, one segment per step, each segment cut into chunks so sends and receives overlap.
// Bandwidth-optimal for large buffers: every rank moves about 2 (p - 1) / p of the buffer.
#pragma once
#include <vector>

#include "comm/algorithms.h"

namespace distml {

// p contiguous pieces of a buffer, in elements; each ring step moves one piece.
struct Segments {
  std::vector<size_t> off, len;
  size_t longest() const;
  // count elements split as evenly as possible.
  static Segments balanced(size_t count, int p);
  // p pieces of `each` elements, back to back.
  static Segments equal(size_t each, int p);
};

// Afterwards rank r holds segment r of buf reduced over all ranks (other segments hold partial sums).
void ring_reduce_scatter(Transport& t, Scratch& s, const Tuning& tune, char* buf, const Segments& segs,
                         DType dtype, ReduceOp op);
// Starting from rank r holding segment r of buf, every rank ends with all segments.
void ring_allgather(Transport& t, const Tuning& tune, char* buf, const Segments& segs, size_t esz);

}  // namespace distml
