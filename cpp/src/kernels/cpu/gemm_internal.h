#pragma once
// Internal (not installed) GEMM entry points shared by gemm.cpp and conv.cpp.
// See Note [GEMM with a custom B packer] in gemm.cpp.
#include <cstdint>

namespace dlcore::kernels::detail {

// The run-time selected register tile: MR rows of C per micro-kernel call, NR columns per packed
// B micro-panel (float AVX-512: 14 x 32, AVX2: 6 x 16, portable: 4 x 8; double: NR halves).
struct GemmTile {
  int mr, nr;
};
template <typename T>
GemmTile gemm_tile();

// Size in elements of the buffer pack_a_all needs for an (M, K) op(A).
template <typename T>
int64_t packed_a_size(int64_t M, int64_t K);

// Packs all of op(A) (M,K) (A stored (M,K) row-major, or (K,M) if trans_a) once, in the layout
// gemm_packed_a expects. Pure function of its inputs; the result is read-only afterwards and
// may be shared by threads.
template <typename T>
void pack_a_all(bool trans_a, int64_t M, int64_t K, const T* A, int64_t lda, T* dst);

// Length of the K slices gemm_packed_a / pack_a_all cut an inner dimension K into: pack_b is
// called with kc <= packed_kc(K).
template <typename T>
int64_t packed_kc(int64_t K);

// Packs op(B) (kc, nr) given as its transpose Bt (nr rows of kc, leading dim ldbt) into one
// micro-panel dst[k * NR + j] (the GEMM's own transposing B packer), zero-filling j >= nr.
// 1 <= nr <= NR. For PackBPanel callbacks that build B^T rows and transpose them.
template <typename T>
void pack_b_from_rows(const T* Bt, int64_t ldbt, int64_t kc, int nr, T* dst);

// Packs op(B) (kc, nr), stored row-major with leading dim ldb, into one micro-panel
// dst[k * NR + j], zero-filling j >= nr. 1 <= nr <= NR.
template <typename T>
void pack_b_rowmajor(const T* B, int64_t ldb, int64_t kc, int nr, T* dst);

// Packs op(B)[k0:k0+kc, n0:n0+nr] into dst[k * NR + j] (k < kc, j < NR), zero-filling j >= nr.
// 1 <= nr <= NR; dst is 64-byte aligned.
template <typename T>
using PackBPanel = void (*)(const void* ctx, int64_t k0, int64_t kc, int64_t n0, int nr, int NR,
                            T* dst);

// Serial GEMM: C(M,N) = Ap(M,K) * op(B)(K,N) + beta * C, where Ap was produced by pack_a_all
// with the same M and K and op(B) is supplied one NR-column micro-panel at a time by pack_b
// (which lets the caller build B on the fly, e.g. im2col straight into the packed panel).
// beta == 0: C is not read. Runs on the calling thread only (meant for use inside the caller's
// own parallel region); scratch is thread_local and O(K * NR).
template <typename T>
void gemm_packed_a(int64_t M, int64_t N, int64_t K, const T* Ap, PackBPanel<T> pack_b,
                   const void* ctx, T beta, T* C, int64_t ldc);

}  // namespace dlcore::kernels::detail
