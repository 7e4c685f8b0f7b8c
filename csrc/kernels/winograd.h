// 3x3 convolutions of stride 1 as Winograd's F(2x2, 3x3): each 4x4 input tile d and 3x3 kernel g
// become 16 products, y = A^T [(G g G^T) * (B^T d B)] A, 2.25 times fewer multiplications than the
// columns' product; the 16 products over channels are 16 matrix products (numpy's batched BLAS).
// These two kernels move the tiles in and out of that form (the kernels' transform is one small
// matrix product, in distml/ops/conv.py).
#pragma once
#include <cstdint>

#include "dtype.h"

namespace distml {

// The transformed tiles of x (N, C, H, W), zero-padded by `pad` before each spatial dim: tiles
// (16, C, N * TH * TW), TH = ceil(OH / 2), TW = ceil(OW / 2), the tile at (n, ty, tx) reading input
// rows 2 ty - pad .. + 3 and columns 2 tx - pad .. + 3 (zeros outside).
void winograd_input_tiles(const void* x, void* tiles, int64_t N, int64_t C, int64_t H, int64_t W, int64_t pad,
                          int64_t OH, int64_t OW, DType dtype);

// out (N, O, OH, OW) from the products (16, O, N * TH * TW): each tile's A^T m A, its 2x2 outputs
// cropped to OH x OW.
void winograd_output_tiles(const void* products, void* out, int64_t N, int64_t O, int64_t OH, int64_t OW,
                           DType dtype);

// The adjoint of winograd_output_tiles: products_grad (16, O, N * TH * TW) = A g A^T of each tile's
// 2x2 gradient g from grad_out (N, O, OH, OW) (zeros past OH x OW); the weight gradient's products
// then pair it with the input tiles.
void winograd_output_tiles_grad(const void* grad_out, void* products_grad, int64_t N, int64_t O, int64_t OH,
                                int64_t OW, DType dtype);

}  // namespace distml
