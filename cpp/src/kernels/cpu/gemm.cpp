// CPU GEMM for dlcore: cache-blocked, packed, OpenMP-parallel SGEMM / DGEMM with
// run-time selected SIMD micro-kernels (AVX-512F, AVX2+FMA, portable C++).
//
// Note [GEMM blocking]
// ~~~~~~~~~~~~~~~~~~~~
// The classic five-loop (Goto / BLIS style) structure is used:
//
//   for jc in N step NC            -- B block of NC columns (L3-sized)
//     for pc in K step KC          -- K slice: pack op(B)[pc:pc+KC, jc:jc+NC] -> Bp
//       for ic in M step MC        -- (per thread) pack op(A)[ic:ic+MC, pc:pc+KC] -> Ap (L2-sized)
//         for jr in NC step NR     -- one KC x NR micro-panel of Bp: stays in L1
//           for ir in MC step MR   -- one MR x KC micro-panel of Ap streamed from L2
//             micro-kernel: C[MR x NR] (+)= Ap_panel * Bp_panel, all in registers
//
// * Packing copies the operands into contiguous, k-major micro-panels
//   (Ap: MR values of a column per k; Bp: NR values of a row per k). The
//   micro-kernel then reads both with unit stride whatever trans_a/trans_b and
//   the leading dimensions were, and there are no TLB/cache-set conflicts from
//   large power-of-two strides. Panels are zero padded to MR/NR so the kernel
//   always runs the full register tile; the M/N edges are handled at store time
//   (row count / masked or scalar column stores) and, for the M edge, by
//   kernels instantiated for every row count 1..MR (no wasted FMAs for short M).
// * KC: the B micro-panel (KC*NR elements) must stay in L1 while the kernel
//   sweeps all A micro-panels of the block. For AVX-512 float NR=32 (128 bytes
//   per k); KC=256 gives 32 KiB, leaving L1 room (48 KiB here) for the
//   streamed A panel and C lines. For double NR=16, the same 128 bytes per k.
// * MC: the packed A block (MC*KC) lives in L2 (2 MiB per core here, 1 MiB
//   on older Xeons). MC*KC*4 = 336*256*4 = 336 KiB leaves room for the B panel
//   and C. MC is a multiple of MR.
// * NC: Bp (KC*NC) is shared by the threads and lives in L3; NC is large so
//   that A is re-packed rarely (A is re-packed once per jc block). Float uses
//   NC=3072 (3 MiB); double NC=1024 (2 MiB). On this machine (Xeon, 48 KiB
//   L1d, 2 MiB L2) MC in 168..672, KC in 192..384 and NC in 768..3072 were all
//   within measurement noise of each other; the values follow the reasoning
//   above.
// * The strided operand (A when !trans_a, B when trans_b) is packed with
//   in-register 16x16 (float) / 8x8 (double) AVX-512 transposes rather than
//   element by element: for skinny shapes such as M=128, N=10, K=784 packing
//   A dominated the run time (~50%) and this made the call ~1.7x faster.
// * Micro-tile (AVX-512): 14x32 floats = 28 zmm accumulators + 2 zmm for the
//   B row + broadcast operands folded into the FMAs ({1to16} embedded
//   broadcast) -> 28 FMAs per 2 vector loads + 14 broadcast loads per k,
//   enough independent FMAs (28) to cover FMA latency x 2 ports. Double uses
//   14x16 (8 doubles per zmm). AVX2 (16 ymm): 6x16 floats / 6x8 doubles = 12
//   accumulators. Portable: 4x8 floats / 4x4 doubles in plain C++ that the
//   compiler vectorises with SSE2.
//
// Note [GEMM dispatch]
// ~~~~~~~~~~~~~~~~~~~~
// The library is compiled without any -march flag, so the binary runs on any
// x86-64 (SSE2 baseline). The AVX-512 and AVX2 kernels are ordinary functions
// carrying __attribute__((target(...))) and are only called after
// __builtin_cpu_supports says the CPU (and OS) supports that ISA. The choice is
// made once (function-local static) and recorded as a table of block sizes and
// function pointers (Arch<T>). Packing routines are plain templates that are
// force-inlined into target-attributed wrappers, so the same source gets
// AVX-512/AVX2 code generation. On non-x86 only the portable path is compiled.
//
// Note [GEMM threading]
// ~~~~~~~~~~~~~~~~~~~~~
// One OpenMP parallel region per call. The threads form a tm x tn grid
// (chosen to balance the padded work): each thread owns a range of MR-panels
// of M and a range of NR-panels of each NC block. Each thread packs its own A
// block into a thread_local buffer (so A blocks sit in the private L2 of the
// core that uses them). Threads never write the same C element.
// For large problems (>= kPrivateBFlops) with tm > 1 the packed B block is
// shared: all threads pack a slice of it, then a barrier; a second barrier
// protects it before the next K slice overwrites it. Otherwise (tm == 1, or a
// small problem) each thread packs just the B panels it uses into its own
// thread_local block and no barrier is needed. Redundant B packing is cheap
// for small problems while the barriers (and pulling the other core's half of
// Bp across) were not: on 2 cores, 128^3 went from ~150 to ~240 GFLOP/s and
// 128x10x784 from ~48 to ~78 GFLOP/s. For large problems sharing B halves the
// packing work and the L3 footprint.
// Problems below kMinFlopsPerThread per thread use fewer threads and run
// serially without entering a parallel region: with 2 threads, 64^3
// (0.5 MFLOP) ran at ~70 GFLOP/s vs ~128 serially, 96^3 (1.8 MFLOP) at ~190
// vs ~150 serially. Inside an active parallel region (omp_in_parallel()) we
// always run serially.
//
// Thread safety: all scratch is thread_local (the shared B block belongs to
// the calling thread), so concurrent calls from different threads are safe.

#include "dlcore/kernels/gemm.h"

#include "gemm_internal.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

// DLCORE_GEMM_NO_SIMD builds only the portable path (as on non-x86 targets).
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(DLCORE_GEMM_NO_SIMD)
#define DLCORE_GEMM_X86 1
#include <immintrin.h>
#else
#define DLCORE_GEMM_X86 0
#endif

#if defined(__GNUC__)
#define DLCORE_ALWAYS_INLINE inline __attribute__((always_inline))
#define DLCORE_RESTRICT __restrict__
#else
#define DLCORE_ALWAYS_INLINE inline
#define DLCORE_RESTRICT
#endif

// The contiguous-row copies in pack_b_impl (NR values per k) otherwise compile into one
// memmove call per row; keep them inline loops (see Note [GEMM blocking]).
#if defined(__GNUC__) && !defined(__clang__)
#define DLCORE_NO_MEMCPY_IDIOM __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DLCORE_NO_MEMCPY_IDIOM
#endif

namespace dlcore::kernels {
namespace {

// ---------------------------------------------------------------------------
// Scratch buffers
// ---------------------------------------------------------------------------

// A growable, 64-byte aligned, per-thread scratch buffer.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(ptr_); }

  // Returns at least `bytes` bytes of 64-byte aligned memory (contents undefined).
  void* get(std::size_t bytes) {
    if (bytes > cap_) {
      std::free(ptr_);
      std::size_t rounded = (bytes + 4095) & ~static_cast<std::size_t>(4095);
      ptr_ = std::aligned_alloc(64, rounded);
      if (ptr_ == nullptr) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = rounded;
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  std::size_t cap_ = 0;
};

Scratch& a_scratch() {
  thread_local Scratch s;
  return s;
}
Scratch& b_scratch() {
  thread_local Scratch s;
  return s;
}

// ---------------------------------------------------------------------------
// Kernel table
// ---------------------------------------------------------------------------

// Micro-kernel: C[0:mr, 0:nr] = alpha * Ap(mr x kc) * Bp(kc x nr) + beta * C.
// a: packed A micro-panel, kc groups of MR values; b: packed B micro-panel, kc
// groups of NR values; c: top-left of the C tile, rows ldc apart.
// 1 <= mr <= MR, 1 <= nr <= NR. beta == 0: C is not read.
template <typename T>
using MicroKernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int mr,
                             int nr, T alpha, T beta);

// Pack op(A)[i0:i0+mc, p0:p0+kc] into ceil(mc/MR) micro-panels of MR*kc.
template <typename T>
using PackA = void (*)(bool trans_a, const T* A, int64_t lda, int64_t i0, int64_t p0, int64_t mc,
                       int64_t kc, T* dst);
// Pack op(B)[p0:p0+kc, j0:j0+nc] into ceil(nc/NR) micro-panels of kc*NR.
template <typename T>
using PackB = void (*)(bool trans_b, const T* B, int64_t ldb, int64_t p0, int64_t j0, int64_t kc,
                       int64_t nc, T* dst);

template <typename T>
struct Arch {
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks; mc % mr == 0, nc % nr == 0
  MicroKernel<T> kernel;
  PackA<T> pack_a;
  PackB<T> pack_b;
};

// ---------------------------------------------------------------------------
// Packing (plain templates; force-inlined into per-ISA wrappers)
// ---------------------------------------------------------------------------

// Shapes: op(A) is (M,K); packs rows [i0, i0+mc) x cols [p0, p0+kc) into
// dst[panel][k][r] (panel = MR rows), rows past mc zero-filled.
template <typename T, int MR>
DLCORE_ALWAYS_INLINE void pack_a_impl(bool trans_a, const T* DLCORE_RESTRICT A, int64_t lda,
                                      int64_t i0, int64_t p0, int64_t mc, int64_t kc,
                                      T* DLCORE_RESTRICT dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ip));
    if (!trans_a) {
      // A is (M,K) row-major: row r of the panel is contiguous in k.
      const T* src = A + (i0 + ip) * lda + p0;
      if (mr == MR) {
        // Blocks of 8 k's: read 8 contiguous values from each row, write transposed.
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
          for (int r = 0; r < MR; ++r) {
            const T* s = src + r * lda + k;
            T* d = dst + k * MR + r;
            for (int u = 0; u < 8; ++u) d[u * MR] = s[u];
          }
        }
        for (; k < kc; ++k)
          for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[r * lda + k];
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int r = 0; r < mr; ++r) dst[k * MR + r] = src[r * lda + k];
          for (int r = mr; r < MR; ++r) dst[k * MR + r] = T(0);
        }
      }
    } else {
      // A is stored (K,M): the MR values for one k are contiguous.
      const T* src = A + p0 * lda + (i0 + ip);
      if (mr == MR) {
        for (int64_t k = 0; k < kc; ++k)
          for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[k * lda + r];
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int r = 0; r < mr; ++r) dst[k * MR + r] = src[k * lda + r];
          for (int r = mr; r < MR; ++r) dst[k * MR + r] = T(0);
        }
      }
    }
    dst += MR * kc;
  }
}

// Shapes: op(B) is (K,N); packs rows [p0, p0+kc) x cols [j0, j0+nc) into
// dst[panel][k][c] (panel = NR columns), columns past nc zero-filled.
template <typename T, int NR>
DLCORE_ALWAYS_INLINE void pack_b_impl(bool trans_b, const T* DLCORE_RESTRICT B, int64_t ldb,
                                      int64_t p0, int64_t j0, int64_t kc, int64_t nc,
                                      T* DLCORE_RESTRICT dst) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jp));
    if (!trans_b) {
      // B is (K,N) row-major: the NR values for one k are contiguous.
      const T* src = B + p0 * ldb + (j0 + jp);
      if (nr == NR) {
        for (int64_t k = 0; k < kc; ++k)
          for (int c = 0; c < NR; ++c) dst[k * NR + c] = src[k * ldb + c];
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int c = 0; c < nr; ++c) dst[k * NR + c] = src[k * ldb + c];
          for (int c = nr; c < NR; ++c) dst[k * NR + c] = T(0);
        }
      }
    } else {
      // B is stored (N,K): column c of op(B) is contiguous in k.
      const T* src = B + (j0 + jp) * ldb + p0;
      if (nr == NR) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
          for (int c = 0; c < NR; ++c) {
            const T* s = src + c * ldb + k;
            T* d = dst + k * NR + c;
            for (int u = 0; u < 8; ++u) d[u * NR] = s[u];
          }
        }
        for (; k < kc; ++k)
          for (int c = 0; c < NR; ++c) dst[k * NR + c] = src[c * ldb + k];
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          for (int c = 0; c < nr; ++c) dst[k * NR + c] = src[c * ldb + k];
          for (int c = nr; c < NR; ++c) dst[k * NR + c] = T(0);
        }
      }
    }
    dst += NR * kc;
  }
}

// ---------------------------------------------------------------------------
// Portable micro-kernel (plain C++; vectorised by the compiler at SSE2 or
// whatever the target's baseline is)
// ---------------------------------------------------------------------------

// Shapes: a (kc x MR packed), b (kc x NR packed) -> C[0:mr, 0:nr].
template <typename T, int MR, int NR>
void kernel_generic(int64_t kc, const T* DLCORE_RESTRICT a, const T* DLCORE_RESTRICT b, T* c,
                    int64_t ldc, int mr, int nr, T alpha, T beta) {
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < mr; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

template <typename T, int MR>
void pack_a_generic(bool t, const T* A, int64_t lda, int64_t i0, int64_t p0, int64_t mc,
                    int64_t kc, T* dst) {
  pack_a_impl<T, MR>(t, A, lda, i0, p0, mc, kc, dst);
}
template <typename T, int NR>
DLCORE_NO_MEMCPY_IDIOM void pack_b_generic(bool t, const T* B, int64_t ldb, int64_t p0, int64_t j0, int64_t kc,
                    int64_t nc, T* dst) {
  pack_b_impl<T, NR>(t, B, ldb, p0, j0, kc, nc, dst);
}

#if DLCORE_GEMM_X86

// ---------------------------------------------------------------------------
// AVX-512F micro-kernels: float 14x32 (NV=2 zmm per row), double 14x16.
// MRR = rows actually computed (1..14, the M edge); NV = zmm columns computed
// (1 or 2: a last B panel with nr <= half the tile skips the second column).
// The packed panels always have the full MR=14 / NR stride.
// ---------------------------------------------------------------------------

constexpr int kMR512 = 14;

// Shapes: a (kc x 14 packed), b (kc x 32 packed) -> C[0:MRR, 0:nr].
template <int MRR, int NV>
__attribute__((target("avx512f"))) void tile_f32_avx512(int64_t kc, const float* DLCORE_RESTRICT a,
                                                        const float* DLCORE_RESTRICT b, float* c,
                                                        int64_t ldc, int nr, float alpha,
                                                        float beta) {
  __m512 acc[MRR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  // Warm the C tile (NV * 64 bytes per row) while the k loop runs.
  for (int i = 0; i < MRR; ++i)
    for (int v = 0; v < NV; ++v)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);

  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMR512;
    b += 32;
  }

  __mmask16 mask[2];
  mask[0] = nr >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << nr) - 1u);
  mask[1] = nr >= 32 ? static_cast<__mmask16>(0xFFFF)
                     : (nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1u) : __mmask16(0));
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mask[v], _mm512_mul_ps(va, acc[i][v]));
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        float* cp = c + i * ldc + 16 * v;
        const __m512 old = _mm512_maskz_loadu_ps(mask[v], cp);
        _mm512_mask_storeu_ps(cp, mask[v],
                              _mm512_fmadd_ps(va, acc[i][v], _mm512_mul_ps(vb, old)));
      }
  }
}

// Shapes: a (kc x 14 packed), b (kc x 16 packed) -> C[0:MRR, 0:nr].
template <int MRR, int NV>
__attribute__((target("avx512f"))) void tile_f64_avx512(int64_t kc, const double* DLCORE_RESTRICT a,
                                                        const double* DLCORE_RESTRICT b, double* c,
                                                        int64_t ldc, int nr, double alpha,
                                                        double beta) {
  __m512d acc[MRR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_pd();
  for (int i = 0; i < MRR; ++i)
    for (int v = 0; v < NV; ++v)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * v), _MM_HINT_T0);

  for (int64_t k = 0; k < kc; ++k) {
    __m512d bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_pd(b + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i) {
      const __m512d ai = _mm512_set1_pd(a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_pd(ai, bv[v], acc[i][v]);
    }
    a += kMR512;
    b += 16;
  }

  __mmask8 mask[2];
  mask[0] = nr >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << nr) - 1u);
  mask[1] = nr >= 16 ? static_cast<__mmask8>(0xFF)
                     : (nr > 8 ? static_cast<__mmask8>((1u << (nr - 8)) - 1u) : __mmask8(0));
  const __m512d va = _mm512_set1_pd(alpha);
  if (beta == 0.0) {
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v)
        _mm512_mask_storeu_pd(c + i * ldc + 8 * v, mask[v], _mm512_mul_pd(va, acc[i][v]));
  } else {
    const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MRR; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        double* cp = c + i * ldc + 8 * v;
        const __m512d old = _mm512_maskz_loadu_pd(mask[v], cp);
        _mm512_mask_storeu_pd(cp, mask[v],
                              _mm512_fmadd_pd(va, acc[i][v], _mm512_mul_pd(vb, old)));
      }
  }
}

// Expands `case 1..14` of a row-count switch for the AVX-512 tiles.
#define DLCORE_MR14_CASES(FN, NV, ...) \
  case 1: return FN<1, NV>(__VA_ARGS__);   \
  case 2: return FN<2, NV>(__VA_ARGS__);   \
  case 3: return FN<3, NV>(__VA_ARGS__);   \
  case 4: return FN<4, NV>(__VA_ARGS__);   \
  case 5: return FN<5, NV>(__VA_ARGS__);   \
  case 6: return FN<6, NV>(__VA_ARGS__);   \
  case 7: return FN<7, NV>(__VA_ARGS__);   \
  case 8: return FN<8, NV>(__VA_ARGS__);   \
  case 9: return FN<9, NV>(__VA_ARGS__);   \
  case 10: return FN<10, NV>(__VA_ARGS__); \
  case 11: return FN<11, NV>(__VA_ARGS__); \
  case 12: return FN<12, NV>(__VA_ARGS__); \
  case 13: return FN<13, NV>(__VA_ARGS__); \
  default: return FN<14, NV>(__VA_ARGS__);

// Shapes: a (kc x 14), b (kc x 32) packed -> C[0:mr, 0:nr]; picks the tile instance.
__attribute__((target("avx512f"))) void kernel_f32_avx512(int64_t kc, const float* a,
                                                          const float* b, float* c, int64_t ldc,
                                                          int mr, int nr, float alpha, float beta) {
  if (nr > 16) {
    switch (mr) { DLCORE_MR14_CASES(tile_f32_avx512, 2, kc, a, b, c, ldc, nr, alpha, beta) }
  } else {
    switch (mr) { DLCORE_MR14_CASES(tile_f32_avx512, 1, kc, a, b, c, ldc, nr, alpha, beta) }
  }
}

// Shapes: a (kc x 14), b (kc x 16) packed -> C[0:mr, 0:nr]; picks the tile instance.
__attribute__((target("avx512f"))) void kernel_f64_avx512(int64_t kc, const double* a,
                                                          const double* b, double* c, int64_t ldc,
                                                          int mr, int nr, double alpha,
                                                          double beta) {
  if (nr > 8) {
    switch (mr) { DLCORE_MR14_CASES(tile_f64_avx512, 2, kc, a, b, c, ldc, nr, alpha, beta) }
  } else {
    switch (mr) { DLCORE_MR14_CASES(tile_f64_avx512, 1, kc, a, b, c, ldc, nr, alpha, beta) }
  }
}
#undef DLCORE_MR14_CASES

// GCC 12 reports a false -Wmaybe-uninitialized inside the AVX-512 shuffle
// intrinsics (their _mm512_undefined_* operand; GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// In-register transpose of a 16x16 float block: on entry r[i] is row i, on
// exit r[j] is column j. 3 shuffle stages (64 shuffles per 256 elements).
__attribute__((target("avx512f"))) DLCORE_ALWAYS_INLINE void transpose16x16_f32(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m512 u[16];  // u[4g + j]: per 128-bit lane L, column 4L + j of rows 4g..4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 w0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(w0, w1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(w0, w1, 0xDD);
  }
}

// In-register transpose of an 8x8 double block (r[i] row i -> r[j] column j).
__attribute__((target("avx512f"))) DLCORE_ALWAYS_INLINE void transpose8x8_f64(__m512d r[8]) {
  __m512d t[8];  // t[2i + e]: per 128-bit lane L, column 2L + e of rows 2i, 2i+1
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  for (int e = 0; e < 2; ++e) {
    const __m512d v0 = _mm512_shuffle_f64x2(t[e], t[2 + e], 0x88);
    const __m512d v1 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], 0x88);
    const __m512d w0 = _mm512_shuffle_f64x2(t[e], t[2 + e], 0xDD);
    const __m512d w1 = _mm512_shuffle_f64x2(t[4 + e], t[6 + e], 0xDD);
    r[e] = _mm512_shuffle_f64x2(v0, v1, 0x88);
    r[4 + e] = _mm512_shuffle_f64x2(v0, v1, 0xDD);
    r[2 + e] = _mm512_shuffle_f64x2(w0, w1, 0x88);
    r[6 + e] = _mm512_shuffle_f64x2(w0, w1, 0xDD);
  }
}

// Shapes: src is (nrows, kc) with rows ld apart, nrows <= nstore <= 16.
// Writes its transpose: dst[k * ds + r] = src[r * ld + k] for r < nrows and
// zero for nrows <= r < nstore. Used to pack the strided operand (A when
// !trans_a, B when trans_b) 16 k's at a time instead of element by element.
__attribute__((target("avx512f"))) void pack_transposed_f32_avx512(const float* src, int64_t ld,
                                                                   int nrows, int nstore,
                                                                   int64_t kc, float* dst,
                                                                   int64_t ds) {
  const __mmask16 smask = static_cast<__mmask16>((1u << nstore) - 1u);
  for (int64_t k = 0; k < kc; k += 16) {
    const int kn = static_cast<int>(std::min<int64_t>(16, kc - k));
    const __mmask16 kmask = static_cast<__mmask16>(kn == 16 ? 0xFFFFu : (1u << kn) - 1u);
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < nrows ? _mm512_maskz_loadu_ps(kmask, src + i * ld + k) : _mm512_setzero_ps();
    transpose16x16_f32(r);
    for (int u = 0; u < kn; ++u) _mm512_mask_storeu_ps(dst + (k + u) * ds, smask, r[u]);
  }
}

// Same as pack_transposed_f32_avx512 for doubles, nrows <= nstore <= 8.
__attribute__((target("avx512f"))) void pack_transposed_f64_avx512(const double* src, int64_t ld,
                                                                   int nrows, int nstore,
                                                                   int64_t kc, double* dst,
                                                                   int64_t ds) {
  const __mmask8 smask = static_cast<__mmask8>((1u << nstore) - 1u);
  for (int64_t k = 0; k < kc; k += 8) {
    const int kn = static_cast<int>(std::min<int64_t>(8, kc - k));
    const __mmask8 kmask = static_cast<__mmask8>((1u << kn) - 1u);
    __m512d r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < nrows ? _mm512_maskz_loadu_pd(kmask, src + i * ld + k) : _mm512_setzero_pd();
    transpose8x8_f64(r);
    for (int u = 0; u < kn; ++u) _mm512_mask_storeu_pd(dst + (k + u) * ds, smask, r[u]);
  }
}

// Shapes: packs op(A)[i0:i0+mc, p0:p0+kc] (see pack_a_impl); MR = 14.
__attribute__((target("avx512f"))) void pack_a_f32_avx512(bool t, const float* A, int64_t lda,
                                                          int64_t i0, int64_t p0, int64_t mc,
                                                          int64_t kc, float* dst) {
  if (t) {
    // A stored (K,M): 14 contiguous values per k; one masked load/store (no memmove calls).
    for (int64_t ip = 0; ip < mc; ip += kMR512, dst += kMR512 * kc) {
      const int mr = static_cast<int>(std::min<int64_t>(kMR512, mc - ip));
      const __mmask16 lm = static_cast<__mmask16>((1u << mr) - 1u);
      const __mmask16 sm = static_cast<__mmask16>((1u << kMR512) - 1u);
      const float* src = A + p0 * lda + (i0 + ip);
      for (int64_t k = 0; k < kc; ++k)
        _mm512_mask_storeu_ps(dst + k * kMR512, sm, _mm512_maskz_loadu_ps(lm, src + k * lda));
    }
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += kMR512, dst += kMR512 * kc) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR512, mc - ip));
    pack_transposed_f32_avx512(A + (i0 + ip) * lda + p0, lda, mr, kMR512, kc, dst, kMR512);
  }
}
__attribute__((target("avx512f"))) void pack_a_f64_avx512(bool t, const double* A, int64_t lda,
                                                          int64_t i0, int64_t p0, int64_t mc,
                                                          int64_t kc, double* dst) {
  if (t) return pack_a_impl<double, kMR512>(t, A, lda, i0, p0, mc, kc, dst);
  for (int64_t ip = 0; ip < mc; ip += kMR512, dst += kMR512 * kc) {
    const int mr = static_cast<int>(std::min<int64_t>(kMR512, mc - ip));
    const double* src = A + (i0 + ip) * lda + p0;
    pack_transposed_f64_avx512(src, lda, std::min(mr, 8), 8, kc, dst, kMR512);
    pack_transposed_f64_avx512(src + 8 * lda, lda, std::max(mr - 8, 0), kMR512 - 8, kc, dst + 8,
                               kMR512);
  }
}

// Shapes: packs op(B)[p0:p0+kc, j0:j0+nc] (see pack_b_impl); NR = 32.
__attribute__((target("avx512f"))) void pack_b_f32_avx512(bool t, const float* B, int64_t ldb,
                                                          int64_t p0, int64_t j0, int64_t kc,
                                                          int64_t nc, float* dst) {
  if (!t) {
    // B is (K,N) row-major: 32 contiguous values per k. Explicit zmm copies: the plain loop
    // compiled into a memmove call per row (~30% of a small conv's forward).
    for (int64_t jp = 0; jp < nc; jp += 32, dst += 32 * kc) {
      const int nr = static_cast<int>(std::min<int64_t>(32, nc - jp));
      const __mmask16 m0 = nr >= 16 ? static_cast<__mmask16>(0xFFFF)
                                    : static_cast<__mmask16>((1u << nr) - 1u);
      const __mmask16 m1 = nr >= 32   ? static_cast<__mmask16>(0xFFFF)
                           : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1u)
                                     : static_cast<__mmask16>(0);
      const float* src = B + p0 * ldb + (j0 + jp);
      for (int64_t k = 0; k < kc; ++k, src += ldb) {
        _mm512_store_ps(dst + k * 32, _mm512_maskz_loadu_ps(m0, src));
        _mm512_store_ps(dst + k * 32 + 16, _mm512_maskz_loadu_ps(m1, src + 16));
      }
    }
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += 32, dst += 32 * kc) {
    const int nr = static_cast<int>(std::min<int64_t>(32, nc - jp));
    const float* src = B + (j0 + jp) * ldb + p0;
    pack_transposed_f32_avx512(src, ldb, std::min(nr, 16), 16, kc, dst, 32);
    pack_transposed_f32_avx512(src + 16 * ldb, ldb, std::max(nr - 16, 0), 16, kc, dst + 16, 32);
  }
}
// Shapes: packs op(B)[p0:p0+kc, j0:j0+nc]; NR = 16.
__attribute__((target("avx512f"))) void pack_b_f64_avx512(bool t, const double* B, int64_t ldb,
                                                          int64_t p0, int64_t j0, int64_t kc,
                                                          int64_t nc, double* dst) {
  if (!t) {
    for (int64_t jp = 0; jp < nc; jp += 16, dst += 16 * kc) {
      const int nr = static_cast<int>(std::min<int64_t>(16, nc - jp));
      const __mmask8 m0 = nr >= 8 ? static_cast<__mmask8>(0xFF)
                                  : static_cast<__mmask8>((1u << nr) - 1u);
      const __mmask8 m1 = nr >= 16  ? static_cast<__mmask8>(0xFF)
                          : nr > 8 ? static_cast<__mmask8>((1u << (nr - 8)) - 1u)
                                   : static_cast<__mmask8>(0);
      const double* src = B + p0 * ldb + (j0 + jp);
      for (int64_t k = 0; k < kc; ++k, src += ldb) {
        _mm512_store_pd(dst + k * 16, _mm512_maskz_loadu_pd(m0, src));
        _mm512_store_pd(dst + k * 16 + 8, _mm512_maskz_loadu_pd(m1, src + 8));
      }
    }
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += 16, dst += 16 * kc) {
    const int nr = static_cast<int>(std::min<int64_t>(16, nc - jp));
    const double* src = B + (j0 + jp) * ldb + p0;
    pack_transposed_f64_avx512(src, ldb, std::min(nr, 8), 8, kc, dst, 16);
    pack_transposed_f64_avx512(src + 8 * ldb, ldb, std::max(nr - 8, 0), 8, kc, dst + 8, 16);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------
// AVX2 + FMA micro-kernels: float 6x16 (2 ymm per row), double 6x8.
// 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
// ---------------------------------------------------------------------------

constexpr int kMR256 = 6;

// Shapes: a (kc x 6 packed), b (kc x 16 packed) -> C[0:MRR, 0:nr].
template <int MRR>
__attribute__((target("avx2,fma"))) void tile_f32_avx2(int64_t kc, const float* DLCORE_RESTRICT a,
                                                       const float* DLCORE_RESTRICT b, float* c,
                                                       int64_t ldc, int nr, float alpha,
                                                       float beta) {
  __m256 acc[MRR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MRR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < MRR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMR256;
    b += 16;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  if (nr == 16) {
#pragma GCC unroll 8
    for (int i = 0; i < MRR; ++i)
      for (int v = 0; v < 2; ++v) {
        float* cp = c + i * ldc + 8 * v;
        __m256 r = _mm256_mul_ps(va, acc[i][v]);
        if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cp), r);
        _mm256_storeu_ps(cp, r);
      }
  } else {
    alignas(32) float tmp[16];
    for (int i = 0; i < MRR; ++i) {
      _mm256_store_ps(tmp, _mm256_mul_ps(va, acc[i][0]));
      _mm256_store_ps(tmp + 8, _mm256_mul_ps(va, acc[i][1]));
      float* cp = c + i * ldc;
      if (beta == 0.0f) {
        for (int j = 0; j < nr; ++j) cp[j] = tmp[j];
      } else {
        for (int j = 0; j < nr; ++j) cp[j] = tmp[j] + beta * cp[j];
      }
    }
  }
}

// Shapes: a (kc x 6 packed), b (kc x 8 packed) -> C[0:MRR, 0:nr].
template <int MRR>
__attribute__((target("avx2,fma"))) void tile_f64_avx2(int64_t kc, const double* DLCORE_RESTRICT a,
                                                       const double* DLCORE_RESTRICT b, double* c,
                                                       int64_t ldc, int nr, double alpha,
                                                       double beta) {
  __m256d acc[MRR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MRR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256d b0 = _mm256_load_pd(b);
    const __m256d b1 = _mm256_load_pd(b + 4);
#pragma GCC unroll 8
    for (int i = 0; i < MRR; ++i) {
      const __m256d ai = _mm256_broadcast_sd(a + i);
      acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
    }
    a += kMR256;
    b += 8;
  }
  const __m256d va = _mm256_set1_pd(alpha);
  const __m256d vb = _mm256_set1_pd(beta);
  if (nr == 8) {
#pragma GCC unroll 8
    for (int i = 0; i < MRR; ++i)
      for (int v = 0; v < 2; ++v) {
        double* cp = c + i * ldc + 4 * v;
        __m256d r = _mm256_mul_pd(va, acc[i][v]);
        if (beta != 0.0) r = _mm256_fmadd_pd(vb, _mm256_loadu_pd(cp), r);
        _mm256_storeu_pd(cp, r);
      }
  } else {
    alignas(32) double tmp[8];
    for (int i = 0; i < MRR; ++i) {
      _mm256_store_pd(tmp, _mm256_mul_pd(va, acc[i][0]));
      _mm256_store_pd(tmp + 4, _mm256_mul_pd(va, acc[i][1]));
      double* cp = c + i * ldc;
      if (beta == 0.0) {
        for (int j = 0; j < nr; ++j) cp[j] = tmp[j];
      } else {
        for (int j = 0; j < nr; ++j) cp[j] = tmp[j] + beta * cp[j];
      }
    }
  }
}

#define DLCORE_MR6_CASES(FN, ...)       \
  case 1: return FN<1>(__VA_ARGS__); \
  case 2: return FN<2>(__VA_ARGS__); \
  case 3: return FN<3>(__VA_ARGS__); \
  case 4: return FN<4>(__VA_ARGS__); \
  case 5: return FN<5>(__VA_ARGS__); \
  default: return FN<6>(__VA_ARGS__);

// Shapes: a (kc x 6), b (kc x 16) packed -> C[0:mr, 0:nr].
__attribute__((target("avx2,fma"))) void kernel_f32_avx2(int64_t kc, const float* a, const float* b,
                                                         float* c, int64_t ldc, int mr, int nr,
                                                         float alpha, float beta) {
  switch (mr) { DLCORE_MR6_CASES(tile_f32_avx2, kc, a, b, c, ldc, nr, alpha, beta) }
}
// Shapes: a (kc x 6), b (kc x 8) packed -> C[0:mr, 0:nr].
__attribute__((target("avx2,fma"))) void kernel_f64_avx2(int64_t kc, const double* a,
                                                         const double* b, double* c, int64_t ldc,
                                                         int mr, int nr, double alpha,
                                                         double beta) {
  switch (mr) { DLCORE_MR6_CASES(tile_f64_avx2, kc, a, b, c, ldc, nr, alpha, beta) }
}
#undef DLCORE_MR6_CASES

template <typename T, int MR>
__attribute__((target("avx2,fma"))) void pack_a_avx2(bool t, const T* A, int64_t lda, int64_t i0,
                                                     int64_t p0, int64_t mc, int64_t kc, T* dst) {
  pack_a_impl<T, MR>(t, A, lda, i0, p0, mc, kc, dst);
}
template <typename T, int NR>
__attribute__((target("avx2,fma"))) DLCORE_NO_MEMCPY_IDIOM void pack_b_avx2(bool t, const T* B, int64_t ldb, int64_t p0,
                                                     int64_t j0, int64_t kc, int64_t nc, T* dst) {
  pack_b_impl<T, NR>(t, B, ldb, p0, j0, kc, nc, dst);
}

#endif  // DLCORE_GEMM_X86

// ---------------------------------------------------------------------------
// Dispatch (Note [GEMM dispatch])
// ---------------------------------------------------------------------------

enum class Isa { kGeneric, kAvx2, kAvx512 };

Isa detect_isa() {
  Isa best = Isa::kGeneric;
#if DLCORE_GEMM_X86 && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    best = Isa::kAvx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    best = Isa::kAvx2;
  }
#endif
  // Optional downgrade for testing the other paths on a newer CPU.
  if (const char* env = std::getenv("DLCORE_GEMM_ISA")) {
    if (std::strcmp(env, "generic") == 0) best = Isa::kGeneric;
    else if (std::strcmp(env, "avx2") == 0 && best == Isa::kAvx512) best = Isa::kAvx2;
  }
  return best;
}

Isa isa() {
  static const Isa chosen = detect_isa();
  return chosen;
}

const Arch<float>& arch_f32() {
  static const Arch<float> a = [] {
    switch (isa()) {
#if DLCORE_GEMM_X86
      case Isa::kAvx512:
        return Arch<float>{kMR512, 32, 336, 256, 3072, kernel_f32_avx512,
                           pack_a_f32_avx512, pack_b_f32_avx512};
      case Isa::kAvx2:
        return Arch<float>{kMR256, 16, 144, 256, 3072, kernel_f32_avx2,
                           pack_a_avx2<float, kMR256>, pack_b_avx2<float, 16>};
#endif
      default:
        return Arch<float>{4, 8, 128, 256, 2048, kernel_generic<float, 4, 8>,
                           pack_a_generic<float, 4>, pack_b_generic<float, 8>};
    }
  }();
  return a;
}

const Arch<double>& arch_f64() {
  static const Arch<double> a = [] {
    switch (isa()) {
#if DLCORE_GEMM_X86
      case Isa::kAvx512:
        return Arch<double>{kMR512, 16, 168, 256, 1024, kernel_f64_avx512,
                            pack_a_f64_avx512, pack_b_f64_avx512};
      case Isa::kAvx2:
        return Arch<double>{kMR256, 8, 96, 256, 2048, kernel_f64_avx2,
                            pack_a_avx2<double, kMR256>, pack_b_avx2<double, 8>};
#endif
      default:
        return Arch<double>{4, 4, 64, 256, 2048, kernel_generic<double, 4, 4>,
                            pack_a_generic<double, 4>, pack_b_generic<double, 4>};
    }
  }();
  return a;
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

// Below this many FLOPs per thread, extra threads cost more than they save
// (team wake-up, barriers and moving packed B / C lines between cores; see
// Note [GEMM threading]).
constexpr double kMinFlopsPerThread = 5.0e5;
// Below this many FLOPs in total, threads that would share the packed B block
// each pack their own copy instead (no barriers); see Note [GEMM threading].
constexpr double kPrivateBFlops = 1.0e8;

// C(M,N) = beta * C (used for K == 0 or alpha == 0); beta == 0 writes zeros without reading C.
template <typename T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i) {
    T* ci = C + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < N; ++j) ci[j] = T(0);
    } else {
      for (int64_t j = 0; j < N; ++j) ci[j] *= beta;
    }
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// K slice length: the K dimension is cut into equal slices of at most 5/4 * KC (rounded up to
// 8), so that e.g. K = 288 (a 3x3x32 conv) is one slice instead of 256 + 32 and K = 576 is
// 2 x 288 instead of 256 + 256 + 64: a short last slice pays a full C load/store pass for
// little work. 5/4 * 256 floats * 128 bytes (NR = 32) = 40 KiB still fits L1 (48 KiB).
inline int64_t slice_kc(int64_t kc, int64_t K) {
  const int64_t cap = kc + kc / 4;
  if (K <= cap) return K;
  const int64_t n = ceil_div(K, cap);
  return std::min(cap, (ceil_div(K, n) + 7) / 8 * 8);
}

// Problem description shared by the threads of one call.
template <typename T>
struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  T alpha;
  const T* A;
  int64_t lda;
  const T* B;
  int64_t ldb;
  T beta;
  T* C;
  int64_t ldc;
  T* bpack;  // shared packed B block: kc * round_up(nc, nr) elements
  bool private_b;  // every thread packs the B panels it needs itself (small problems)
};

// Picks a tm x tn thread grid (tm * tn == nth) minimising the largest padded
// per-thread tile area; ties favour splitting M (threads then share packed B).
inline void thread_grid(int nth, int64_t mpanels, int64_t npanels, int mr, int nr, int* tm,
                        int* tn) {
  double best = -1.0;
  *tm = nth;
  *tn = 1;
  for (int a = nth; a >= 1; --a) {
    if (nth % a != 0) continue;
    const int b = nth / a;
    const double cost = static_cast<double>(ceil_div(mpanels, a) * mr) *
                        static_cast<double>(ceil_div(npanels, b) * nr);
    if (best < 0.0 || cost < best) {
      best = cost;
      *tm = a;
      *tn = b;
    }
  }
}

// Body run by every thread `tid` of `nth` (see Note [GEMM blocking] and
// Note [GEMM threading]). Shapes: op(A) (M,K), op(B) (K,N), C (M,N).
template <typename T>
void gemm_thread(const Arch<T>& ar, const Problem<T>& p, int tid, int nth) {
  const int MR = ar.mr, NR = ar.nr;
  const int64_t mpanels_total = ceil_div(p.M, MR);
  int tm, tn;
  thread_grid(nth, mpanels_total, ceil_div(std::min(p.N, ar.nc), NR), MR, NR, &tm, &tn);
  const int tmi = tid / tn, tni = tid % tn;
  // This thread's rows: MR-panels [mp0, mp1).
  const int64_t mp0 = mpanels_total * tmi / tm, mp1 = mpanels_total * (tmi + 1) / tm;
  const int64_t m0 = mp0 * MR, m1 = std::min(p.M, mp1 * MR);
  const bool shared_b = tm > 1 && !p.private_b;
  if (!shared_b && m1 <= m0) return;  // no rows and no shared work (no barriers to join)

  T* apack = nullptr;
  const int64_t kc_max = slice_kc(ar.kc, p.K);
  if (m1 > m0) {
    const int64_t mc_max = std::min<int64_t>(ar.mc, ceil_div(m1 - m0, MR) * MR);
    apack = static_cast<T*>(a_scratch().get(sizeof(T) * mc_max * kc_max));
  }
  // Packed B: the caller's shared block (tm > 1), else a private block holding
  // only this thread's panels (so no thread can overwrite panels another
  // thread is still using, and no barriers are needed).
  T* bpack = p.bpack;
  if (!shared_b) {
    const int64_t my_panels = ceil_div(ceil_div(std::min(p.N, ar.nc), NR), tn);
    bpack = static_cast<T*>(b_scratch().get(sizeof(T) * my_panels * NR * kc_max));
  }

  for (int64_t jc = 0; jc < p.N; jc += ar.nc) {
    const int64_t nc = std::min(ar.nc, p.N - jc);
    const int64_t npanels = ceil_div(nc, NR);
    // This thread's columns within the block: NR-panels [np0, np1).
    const int64_t np0 = npanels * tni / tn, np1 = npanels * (tni + 1) / tn;
    // Panel jp lives at bpack + (jp - bbase) * NR * kc.
    const int64_t bbase = shared_b ? 0 : np0;
    for (int64_t pc = 0; pc < p.K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, p.K - pc);
      const T beta = pc == 0 ? p.beta : T(1);  // later K slices accumulate

      // Pack B: all threads share the work (tm > 1), or each its own panels.
      {
        int64_t q0 = np0, q1 = np1;
        if (shared_b) {
          q0 = npanels * tid / nth;
          q1 = npanels * (tid + 1) / nth;
        }
        if (q1 > q0) {
          ar.pack_b(p.tb, p.B, p.ldb, pc, jc + q0 * NR, kc, std::min(nc - q0 * NR, (q1 - q0) * NR),
                    bpack + (q0 - bbase) * NR * kc);
        }
      }
#ifdef _OPENMP
      if (shared_b) {
#pragma omp barrier
      }
#endif
      for (int64_t ic = m0; ic < m1; ic += ar.mc) {
        const int64_t mc = std::min(ar.mc, m1 - ic);
        ar.pack_a(p.ta, p.A, p.lda, ic, pc, mc, kc, apack);
        for (int64_t jp = np0; jp < np1; ++jp) {
          const int64_t j = jp * NR;
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - j));
          const T* bp = bpack + (jp - bbase) * NR * kc;
          T* cblk = p.C + ic * p.ldc + jc + j;
          for (int64_t i = 0; i < mc; i += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - i));
            ar.kernel(kc, apack + i * kc, bp, cblk + i * p.ldc, p.ldc, mr, nr, p.alpha, beta);
          }
        }
      }
#ifdef _OPENMP
      if (shared_b) {
#pragma omp barrier
      }
#endif
    }
  }
}

// Shapes: op(A) (M,K), op(B) (K,N), C (M,N); see the header for the contract.
template <typename T>
void gemm(const Arch<T>& ar, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }

  int nth = 1;
#ifdef _OPENMP
  if (!omp_in_parallel()) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) *
                         static_cast<double>(K);
    const int64_t by_work = static_cast<int64_t>(flops / kMinFlopsPerThread);
    // No point in more threads than register tiles.
    const int64_t by_tiles = ceil_div(M, ar.mr) * ceil_div(N, ar.nr);
    nth = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>({static_cast<int64_t>(omp_get_max_threads()), by_work, by_tiles})));
  }
#endif

  // The shared B block is allocated here (by the calling thread) because the
  // team needs it before any barrier; threads that do not share B allocate a
  // private one in gemm_thread.
  // Small problems: threads that share rows of B pack it redundantly instead
  // of sharing it; duplicating a small pack is cheaper than the barriers.
  const bool private_b =
      2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) <
      kPrivateBFlops;
  T* bpack = nullptr;
  if (nth > 1 && !private_b) {
    const int64_t nc_max = std::min(ar.nc, ceil_div(N, ar.nr) * ar.nr);
    const int64_t kc_max = slice_kc(ar.kc, K);
    bpack = static_cast<T*>(b_scratch().get(sizeof(T) * nc_max * kc_max));
  }
  const Problem<T> p{ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bpack, private_b};

  if (nth == 1) {
    gemm_thread(ar, p, 0, 1);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nth)
  gemm_thread(ar, p, omp_get_thread_num(), omp_get_num_threads());
#endif
}

// Note [GEMM with a custom B packer]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// gemm_packed_a (gemm_internal.h) serves convolution: A (the weights) is packed once per conv
// call by pack_a_all -- every K slice, every MR panel, ceil(M/MR)*MR*K elements -- instead of
// once per image, and B is never materialised: for each NR-column micro-panel and K slice the
// caller's pack_b writes the kc x NR panel (e.g. im2col of the input) straight into an L1-sized
// buffer, and all M rows of C are computed against it before the next panel. No NC / MC blocks:
// the whole packed A (one K slice) is streamed from L2 per panel as in the MR loop above.
// Slice lengths follow slice_kc, so both functions agree on the layout:
// slice starting at pc (length kc) -> Ap + Mpad * pc, its panel i at + i * MR * kc.

template <typename T>
const Arch<T>& arch_of();
template <>
const Arch<float>& arch_of<float>() { return arch_f32(); }
template <>
const Arch<double>& arch_of<double>() { return arch_f64(); }

}  // namespace

namespace detail {

template <typename T>
GemmTile gemm_tile() {
  const Arch<T>& ar = arch_of<T>();
  return {ar.mr, ar.nr};
}

template <typename T>
int64_t packed_a_size(int64_t M, int64_t K) {
  const Arch<T>& ar = arch_of<T>();
  return ceil_div(std::max<int64_t>(M, 0), ar.mr) * ar.mr * std::max<int64_t>(K, 0);
}

template <typename T>
void pack_a_all(bool trans_a, int64_t M, int64_t K, const T* A, int64_t lda, T* dst) {
  const Arch<T>& ar = arch_of<T>();
  if (M <= 0 || K <= 0) return;
  const int64_t mpad = ceil_div(M, ar.mr) * ar.mr;
  const int64_t kc_max = slice_kc(ar.kc, K);
  for (int64_t pc = 0; pc < K; pc += kc_max) {
    const int64_t kc = std::min(kc_max, K - pc);
    ar.pack_a(trans_a, A, lda, 0, pc, M, kc, dst + mpad * pc);
  }
}

template <typename T>
int64_t packed_kc(int64_t K) {
  return slice_kc(arch_of<T>().kc, K);
}

template <typename T>
void pack_b_from_rows(const T* Bt, int64_t ldbt, int64_t kc, int nr, T* dst) {
  arch_of<T>().pack_b(true, Bt, ldbt, 0, 0, kc, nr, dst);
}

template <typename T>
void pack_b_rowmajor(const T* B, int64_t ldb, int64_t kc, int nr, T* dst) {
  arch_of<T>().pack_b(false, B, ldb, 0, 0, kc, nr, dst);
}

template <typename T>
void gemm_packed_a(int64_t M, int64_t N, int64_t K, const T* Ap, PackBPanel<T> pack_b,
                   const void* ctx, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Arch<T>& ar = arch_of<T>();
  const int MR = ar.mr, NR = ar.nr;
  const int64_t mpad = ceil_div(M, MR) * MR;
  const int64_t kc_max = slice_kc(ar.kc, K);
  T* bp = static_cast<T*>(b_scratch().get(sizeof(T) * NR * kc_max));
  for (int64_t j = 0; j < N; j += NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, N - j));
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      pack_b(ctx, pc, kc, j, nr, NR, bp);
      const T b = pc == 0 ? beta : T(1);
      const T* ap = Ap + mpad * pc;
      for (int64_t i = 0; i < M; i += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, M - i));
        ar.kernel(kc, ap + i * kc, bp, C + i * ldc + j, ldc, mr, nr, T(1), b);
      }
    }
  }
}

template GemmTile gemm_tile<float>();
template GemmTile gemm_tile<double>();
template int64_t packed_a_size<float>(int64_t, int64_t);
template int64_t packed_a_size<double>(int64_t, int64_t);
template void pack_a_all<float>(bool, int64_t, int64_t, const float*, int64_t, float*);
template void pack_a_all<double>(bool, int64_t, int64_t, const double*, int64_t, double*);
template int64_t packed_kc<float>(int64_t);
template int64_t packed_kc<double>(int64_t);
template void pack_b_from_rows<float>(const float*, int64_t, int64_t, int, float*);
template void pack_b_from_rows<double>(const double*, int64_t, int64_t, int, double*);
template void pack_b_rowmajor<float>(const float*, int64_t, int64_t, int, float*);
template void pack_b_rowmajor<double>(const double*, int64_t, int64_t, int, double*);
template void gemm_packed_a<float>(int64_t, int64_t, int64_t, const float*, PackBPanel<float>,
                                   const void*, float, float*, int64_t);
template void gemm_packed_a<double>(int64_t, int64_t, int64_t, const double*, PackBPanel<double>,
                                    const void*, double, double*, int64_t);

}  // namespace detail

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  gemm<float>(arch_f32(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
           const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
           int64_t ldc) {
  gemm<double>(arch_f64(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* gemm_isa() {
  switch (isa()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace dlcore::kernels
