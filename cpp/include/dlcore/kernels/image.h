#pragma once
// Batched data augmentation over raw NCHW buffers.
#include <cstdint>

namespace dlcore::kernels {

// y: (N, C, OH, OW), x: (N, C, H, W).
// y[n, c, i, j] = x[n, c, top[n] + i, left[n] + j'] with j' = (flip[n] ? OW - 1 - j : j),
// and 0 where that falls outside x (negative top/left act as zero padding).
template <class T>
void crop_flip(const T* x, T* y, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW,
               const int64_t* top, const int64_t* left, const bool* flip);

}  // namespace dlcore::kernels
