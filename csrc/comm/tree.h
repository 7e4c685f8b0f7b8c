// Exchanges rooted at one rank: the binomial-tree broadcast, and the point-to-point pieces
// between root and every other rank that gather, scatter, reduce and the large broadcast use.
#pragma once
#include "comm/algorithms.h"
#include "comm/ring.h"

namespace distml {

// Binomial tree from root: log2(p) rounds, for latency-bound sizes.
void tree_broadcast(Transport& t, char* buf, size_t bytes, int root);
// Rank i's piece is at root_base + i * bytes on root, at `piece` elsewhere. Root receives
// (gather, to_root) or sends (scatter) all of them; every other rank exchanges its one piece.
void root_exchange(Transport& t, char* root_base, char* piece, size_t bytes, int root, bool to_root);
// Rank i's piece is segment i of buf on every rank: root receives the others' segments
// (to_root: the end of reduce) or sends each rank its own (the start of a large broadcast).
void root_exchange_segments(Transport& t, char* buf, const Segments& segs, size_t esz, int root, bool to_root);

}  // namespace distml
