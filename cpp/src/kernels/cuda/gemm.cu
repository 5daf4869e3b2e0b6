// GEMM on the GPU: the gemm helpers of cuda_backend.h and CudaBackend::matmul.
//
// Note [CUDA GEMM]
//   * cuBLAS (builds with DLCORE_HAVE_CUBLAS). dlcore is row-major, cuBLAS column-major:
//     the row-major C (M x N, ldc) is the column-major C^T, and C^T = op(B)^T op(A)^T, so
//     the call is cublas<T>gemm(op_b, op_a, N, M, K, B, ldb, A, lda, C, ldc) with the
//     operands swapped. One handle per device, created on first use under a mutex and
//     never destroyed (destroying it at exit can race the driver's own teardown); the same
//     mutex serialises the set-stream + launch pair (a handle is not safe to share
//     between threads at the same time). The math mode stays the default
//     (CUBLAS_DEFAULT_MATH, no TF32), so float32 results match the CPU GEMM to 1e-4.
//     Leading dimensions of degenerate (1-row / 1-column) operands are raised to what
//     cuBLAS validates (they are never used for addressing); shapes that do not fit
//     cuBLAS' int arguments, and K == 0, go to the fallback kernel.
//   * Fallback (always compiled; used without cuBLAS or with DLCORE_CUDA_GEMM=fallback,
//     read once): 64x64 output tiles per 256-thread block, 16-deep slices of op(A) and
//     op(B) staged in shared memory (padded rows), 4x4 outputs per thread in registers.
//     Threads own rows ty + 16r and columns tx + 16c of the tile, so shared-memory reads
//     are broadcasts / consecutive words and the stores to C are coalesced. The tile
//     loads are specialised on the transpose flags so that consecutive threads read
//     consecutive addresses of A and B whatever their layout. Tiles and batches are
//     grid-stride loops (any M, N, K, batch; 64-bit addressing).
//   * matmul: float32/float64 batches are split into maximal runs whose offsets form an
//     arithmetic progression (stride 0 included); each run is one strided-batched GEMM
//     (a plain matmul or a broadcast batch is a single call). int64 uses a simple kernel
//     (one thread per output, uint64 accumulation so overflow wraps as on the CPU).
#include <cuda_runtime.h>
#ifdef DLCORE_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "cuda_backend.h"
#include "dlcore/dtype.h"
#include "dlcore/errors.h"

namespace dlcore::cuda_impl {
namespace {

// ---------------------------------------------------------------------------
// Fallback tiled kernel
// ---------------------------------------------------------------------------

// `#pragma unroll` for the device pass only (the host compiler of -Wall warns on it).
#ifdef __CUDA_ARCH__
#define DLCORE_UNROLL _Pragma("unroll")
#else
#define DLCORE_UNROLL
#endif

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kGemmThreads = 256;
constexpr int kTilePad = 2;  // row pitch 66: the transposed tile stores hit distinct banks
static_assert(kTileM * kTileK % kGemmThreads == 0 && kTileN * kTileK % kGemmThreads == 0, "tile loads");
static_assert(kGemmThreads == 16 * 16 && kTileM % 16 == 0 && kTileN % 16 == 0, "16x16 threads, 4x4 outputs each");

template <class T>
struct GemmParams {
  int64_t M, N, K;
  T alpha, beta;
  const T* A;
  int64_t lda, sa;
  const T* B;
  int64_t ldb, sb;
  T* C;
  int64_t ldc, sc;
  int64_t batch;
  int64_t tiles_n, tiles;  // output tiles per row of tiles, in all
};

template <class T>
struct GemmSmem {
  T a[kTileK][kTileM + kTilePad];  // a[k][i] = op(A)(m0 + i, k0 + k)
  T b[kTileK][kTileN + kTilePad];  // b[k][j] = op(B)(k0 + k, n0 + j)
};

// The phases of one block's work on one output tile (separated by __syncthreads in the
// kernel). Host-callable so that the index arithmetic can be checked on a machine
// without a GPU by running the phases for every thread in turn.
template <class T, bool TA, bool TB>
struct TileGemm {
  static constexpr int kRegM = kTileM / 16, kRegN = kTileN / 16;

  __host__ __device__ static void load(GemmSmem<T>& sm, int tid, const GemmParams<T>& p, const T* A, const T* B,
                                       int64_t m0, int64_t n0, int64_t k0) {
DLCORE_UNROLL
    for (int e = 0; e < kTileM * kTileK / kGemmThreads; ++e) {
      const int l = tid + e * kGemmThreads;
      // Consecutive threads walk the contiguous index of A's storage.
      const int i = TA ? l % kTileM : l / kTileK;
      const int k = TA ? l / kTileM : l % kTileK;
      const int64_t gi = m0 + i, gk = k0 + k;
      T v = T(0);
      if (gi < p.M && gk < p.K) v = TA ? A[gk * p.lda + gi] : A[gi * p.lda + gk];
      sm.a[k][i] = v;
    }
DLCORE_UNROLL
    for (int e = 0; e < kTileN * kTileK / kGemmThreads; ++e) {
      const int l = tid + e * kGemmThreads;
      const int j = TB ? l / kTileK : l % kTileN;
      const int k = TB ? l % kTileK : l / kTileN;
      const int64_t gj = n0 + j, gk = k0 + k;
      T v = T(0);
      if (gj < p.N && gk < p.K) v = TB ? B[gj * p.ldb + gk] : B[gk * p.ldb + gj];
      sm.b[k][j] = v;
    }
  }

  __host__ __device__ static void compute(const GemmSmem<T>& sm, int tid, T (&acc)[kRegM][kRegN]) {
    const int tx = tid % 16, ty = tid / 16;
DLCORE_UNROLL
    for (int k = 0; k < kTileK; ++k) {
      T a[kRegM], b[kRegN];
DLCORE_UNROLL
      for (int r = 0; r < kRegM; ++r) a[r] = sm.a[k][ty + 16 * r];
DLCORE_UNROLL
      for (int c = 0; c < kRegN; ++c) b[c] = sm.b[k][tx + 16 * c];
DLCORE_UNROLL
      for (int r = 0; r < kRegM; ++r)
DLCORE_UNROLL
        for (int c = 0; c < kRegN; ++c) acc[r][c] += a[r] * b[c];
    }
  }

  __host__ __device__ static void store(int tid, const T (&acc)[kRegM][kRegN], const GemmParams<T>& p, T* C,
                                        int64_t m0, int64_t n0) {
    const int tx = tid % 16, ty = tid / 16;
DLCORE_UNROLL
    for (int r = 0; r < kRegM; ++r) {
      const int64_t i = m0 + ty + 16 * r;
      if (i >= p.M) continue;
DLCORE_UNROLL
      for (int c = 0; c < kRegN; ++c) {
        const int64_t j = n0 + tx + 16 * c;
        if (j >= p.N) continue;
        T v = p.alpha * acc[r][c];
        if (p.beta != T(0)) v += p.beta * C[i * p.ldc + j];  // beta == 0: C is not read
        C[i * p.ldc + j] = v;
      }
    }
  }
};

template <class T, bool TA, bool TB>
__global__ void __launch_bounds__(kGemmThreads) gemm_tiled_kernel(GemmParams<T> p) {
  using Tile = TileGemm<T, TA, TB>;
  __shared__ GemmSmem<T> sm;
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
    const T* A = p.A + z * p.sa;
    const T* B = p.B + z * p.sb;
    T* C = p.C + z * p.sc;
    for (int64_t t = blockIdx.x; t < p.tiles; t += gridDim.x) {
      const int64_t m0 = (t / p.tiles_n) * kTileM, n0 = (t % p.tiles_n) * kTileN;
      T acc[Tile::kRegM][Tile::kRegN];
DLCORE_UNROLL
      for (int r = 0; r < Tile::kRegM; ++r)
DLCORE_UNROLL
        for (int c = 0; c < Tile::kRegN; ++c) acc[r][c] = T(0);
      for (int64_t k0 = 0; k0 < p.K; k0 += kTileK) {
        Tile::load(sm, tid, p, A, B, m0, n0, k0);
        __syncthreads();
        Tile::compute(sm, tid, acc);
        __syncthreads();
      }
      Tile::store(tid, acc, p, C, m0, n0);
    }
  }
}

template <class T>
GemmParams<T> make_params(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, int64_t sa,
                          const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                          int64_t batch) {
  GemmParams<T> p{};
  p.M = M;
  p.N = N;
  p.K = K;
  p.alpha = alpha;
  p.beta = beta;
  p.A = A;
  p.lda = lda;
  p.sa = sa;
  p.B = B;
  p.ldb = ldb;
  p.sb = sb;
  p.C = C;
  p.ldc = ldc;
  p.sc = sc;
  p.batch = batch;
  p.tiles_n = (N + kTileN - 1) / kTileN;
  p.tiles = p.tiles_n * ((M + kTileM - 1) / kTileM);
  return p;
}

template <class T>
void gemm_fallback(bool ta, bool tb, const GemmParams<T>& p) {
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(p.tiles, INT_MAX)),
                  static_cast<unsigned>(std::min<int64_t>(p.batch, 65535)));
  cudaStream_t st = current_stream();
  if (!ta && !tb)
    gemm_tiled_kernel<T, false, false><<<grid, kGemmThreads, 0, st>>>(p);
  else if (!ta && tb)
    gemm_tiled_kernel<T, false, true><<<grid, kGemmThreads, 0, st>>>(p);
  else if (ta && !tb)
    gemm_tiled_kernel<T, true, false><<<grid, kGemmThreads, 0, st>>>(p);
  else
    gemm_tiled_kernel<T, true, true><<<grid, kGemmThreads, 0, st>>>(p);
  DLCORE_CUDA_LAUNCH_CHECK();
}

bool fallback_forced() {
  static const bool forced = [] {
    const char* e = std::getenv("DLCORE_CUDA_GEMM");
    return e != nullptr && std::strcmp(e, "fallback") == 0;
  }();
  return forced;
}

// ---------------------------------------------------------------------------
// cuBLAS
// ---------------------------------------------------------------------------

#ifdef DLCORE_HAVE_CUBLAS

void cublas_check(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw RuntimeError(str("cuBLAS error in ", what, ": ", cublasGetStatusName(st), " (", cublasGetStatusString(st),
                         ")"));
}

constexpr int kMaxDevices = 64;

struct CublasSlot {
  std::mutex mu;  // guards creation, and one launch at a time per handle (a handle is not
                  // safe to use from two threads at once)
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;  // the stream the handle is bound to
};

CublasSlot g_cublas[kMaxDevices];

// The current device's handle (created on first use), bound to current_stream(); `lock`
// holds its mutex until the caller's cuBLAS call has been issued.
cublasHandle_t cublas_handle(std::unique_lock<std::mutex>& lock) {
  const int dev = current_device();
  DLCORE_CHECK(dev >= 0 && dev < kMaxDevices, RuntimeError, "cuBLAS: device index ", dev, " is out of range");
  CublasSlot& slot = g_cublas[dev];
  lock = std::unique_lock<std::mutex>(slot.mu);
  const cudaStream_t st = current_stream();
  if (slot.handle == nullptr) {  // a failure throws and leaves the slot empty: the next call retries
    cublasHandle_t h = nullptr;
    cublas_check(cublasCreate(&h), "cublasCreate");
    cublasStatus_t e = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);  // no TF32
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasSetStream(h, st);
    if (e != CUBLAS_STATUS_SUCCESS) {
      cublasDestroy(h);
      cublas_check(e, "cublasSetMathMode / cublasSetStream");
    }
    slot.handle = h;
    slot.stream = st;
  } else if (st != slot.stream) {
    cublas_check(cublasSetStream(slot.handle, st), "cublasSetStream");
    slot.stream = st;
  }
  return slot.handle;
}

inline cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                  const float* alpha, const float* A, int lda, const float* B, int ldb,
                                  const float* beta, float* C, int ldc) {
  return cublasSgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                  const double* alpha, const double* A, int lda, const double* B, int ldb,
                                  const double* beta, double* C, int ldc) {
  return cublasDgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline cublasStatus_t cublas_gemm_sb(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n,
                                     int k, const float* alpha, const float* A, int lda, long long sa,
                                     const float* B, int ldb, long long sb, const float* beta, float* C, int ldc,
                                     long long sc, int batch) {
  return cublasSgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}
inline cublasStatus_t cublas_gemm_sb(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n,
                                     int k, const double* alpha, const double* A, int lda, long long sa,
                                     const double* B, int ldb, long long sb, const double* beta, double* C,
                                     int ldc, long long sc, int batch) {
  return cublasDgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

// Column-major view of a row-major operand: the stored matrix has `rows` x `cols`
// (column-major) and leading dimension ld. cuBLAS requires ld >= max(1, rows) even when
// cols <= 1 (ld then addresses nothing), so raise it in that case. Returns whether ld is
// acceptable to cuBLAS.
bool fix_ld(int64_t rows, int64_t cols, int64_t& ld) {
  const int64_t need = std::max<int64_t>(1, rows);
  if (cols <= 1 && ld < need) ld = need;
  return ld >= need;
}

// Row-major C = alpha op(A) op(B) + beta C over `batch` strided products through cuBLAS.
// Returns false (nothing launched) when the shape does not fit cuBLAS' int arguments.
template <class T>
bool gemm_cublas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                 int64_t batch) {
  // Column-major problem: C^T (N x M) = op_b(B) (N x K) * op_a(A) (K x M).
  //   B stored column-major: tb ? (K x N) : (N x K); A stored: ta ? (M x K) : (K x M).
  if (!(tb ? fix_ld(K, N, ldb) : fix_ld(N, K, ldb))) return false;
  if (!(ta ? fix_ld(M, K, lda) : fix_ld(K, M, lda))) return false;
  if (!fix_ld(N, M, ldc)) return false;
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) return false;
  const cublasOperation_t ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N, oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  std::unique_lock<std::mutex> lock;
  cublasHandle_t h = cublas_handle(lock);
  if (batch == 1) {
    cublas_check(cublas_gemm(h, ob, oa, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B,
                             static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C, static_cast<int>(ldc)),
                 std::is_same_v<T, float> ? "cublasSgemm" : "cublasDgemm");
    return true;
  }
  for (int64_t b0 = 0; b0 < batch; b0 += INT_MAX) {
    const int nb = static_cast<int>(std::min<int64_t>(batch - b0, INT_MAX));
    cublas_check(cublas_gemm_sb(h, ob, oa, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha,
                                B + b0 * sb, static_cast<int>(ldb), sb, A + b0 * sa, static_cast<int>(lda), sa,
                                &beta, C + b0 * sc, static_cast<int>(ldc), sc, nb),
                 std::is_same_v<T, float> ? "cublasSgemmStridedBatched" : "cublasDgemmStridedBatched");
  }
  return true;
}

#endif  // DLCORE_HAVE_CUBLAS

#ifdef DLCORE_HAVE_CUBLAS
constexpr bool kHaveCublas = true;
#else
constexpr bool kHaveCublas = false;
#endif

bool use_cublas() { return kHaveCublas && !fallback_forced(); }

// ---------------------------------------------------------------------------
// int64 matmul
// ---------------------------------------------------------------------------

// C[b] (M x N, contiguous) = op(A + off_a(b)) op(B + off_b(b)); offsets from the device
// arrays when given, else b * sa / b * sb. Products and sums wrap (uint64).
__global__ void matmul_int64_kernel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const int64_t* A,
                                    int64_t lda, int64_t sa, const int64_t* offa, const int64_t* B, int64_t ldb,
                                    int64_t sb, const int64_t* offb, int64_t* C, int64_t total) {
  const int64_t MN = M * N;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = idx / MN, rem = idx - b * MN, i = rem / N, j = rem - i * N;
    const int64_t* a = A + (offa ? offa[b] : b * sa);
    const int64_t* bb = B + (offb ? offb[b] : b * sb);
    uint64_t acc = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t av = ta ? a[k * lda + i] : a[i * lda + k];
      const int64_t bv = tb ? bb[j * ldb + k] : bb[k * ldb + j];
      acc += static_cast<uint64_t>(av) * static_cast<uint64_t>(bv);
    }
    C[idx] = static_cast<int64_t>(acc);
  }
}

void matmul_int64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const int64_t* A, int64_t lda,
                  const int64_t* offa, const int64_t* B, int64_t ldb, const int64_t* offb, int64_t* C,
                  int64_t batch) {
  // Arithmetic offsets go as (base, stride) kernel arguments; others are copied to the device.
  const int64_t sa = batch > 1 ? offa[1] - offa[0] : 0, sb = batch > 1 ? offb[1] - offb[0] : 0;
  bool arith = true;
  for (int64_t i = 1; i < batch && arith; ++i) arith = offa[i] - offa[i - 1] == sa && offb[i] - offb[i - 1] == sb;
  const int64_t total = batch * M * N;
  cudaStream_t st = current_stream();
  if (arith) {
    matmul_int64_kernel<<<grid_for(total), 256, 0, st>>>(ta, tb, M, N, K, A + offa[0], lda, sa, nullptr,
                                                          B + offb[0], ldb, sb, nullptr, C, total);
    DLCORE_CUDA_LAUNCH_CHECK();
    return;
  }
  const size_t bytes = sizeof(int64_t) * static_cast<size_t>(batch);
  Workspace ws(2 * bytes);
  int64_t* d_offa = ws.as<int64_t>();
  int64_t* d_offb = d_offa + batch;
  // Pageable host memory: staged by the runtime before the call returns (no device sync).
  DLCORE_CUDA_CHECK(cudaMemcpyAsync(d_offa, offa, bytes, cudaMemcpyHostToDevice, st));
  DLCORE_CUDA_CHECK(cudaMemcpyAsync(d_offb, offb, bytes, cudaMemcpyHostToDevice, st));
  matmul_int64_kernel<<<grid_for(total), 256, 0, st>>>(ta, tb, M, N, K, A, lda, 0, d_offa, B, ldb, 0, d_offb, C,
                                                        total);
  DLCORE_CUDA_LAUNCH_CHECK();
}

// Float batches: maximal runs of arithmetic offsets (non-negative steps), one
// strided-batched GEMM per run.
template <class T>
void matmul_float(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const int64_t* offa,
                  const T* B, int64_t ldb, const int64_t* offb, T* C, int64_t batch) {
  int64_t i = 0;
  while (i < batch) {
    int64_t len = 1, sa = 0, sb = 0;
    if (i + 1 < batch && offa[i + 1] >= offa[i] && offb[i + 1] >= offb[i]) {
      sa = offa[i + 1] - offa[i];
      sb = offb[i + 1] - offb[i];
      len = 2;
      while (i + len < batch && offa[i + len] - offa[i + len - 1] == sa && offb[i + len] - offb[i + len - 1] == sb)
        ++len;
    }
    gemm_strided_batched<T>(ta, tb, M, N, K, T(1), A + offa[i], lda, sa, B + offb[i], ldb, sb, T(0), C + i * M * N,
                            N, M * N, len);
    i += len;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Public helpers (cuda_backend.h)
// ---------------------------------------------------------------------------

template <class T>
void gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                          int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C, int64_t ldc,
                          int64_t stride_c, int64_t batch) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "gemm: float or double");
  if (M <= 0 || N <= 0 || batch <= 0) return;
#ifdef DLCORE_HAVE_CUBLAS
  // K == 0 (C = beta C) goes to the fallback kernel, which handles it without reading A or B.
  if (use_cublas() && K > 0 &&
      gemm_cublas<T>(ta, tb, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch))
    return;
#endif
  gemm_fallback<T>(ta, tb,
                   make_params<T>(M, N, std::max<int64_t>(K, 0), alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
                                  ldc, stride_c, batch));
}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_strided_batched<T>(ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

const char* gemm_impl() { return use_cublas() ? "cublas" : "fallback"; }

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm_strided_batched<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                          int64_t, const float*, int64_t, int64_t, float, float*, int64_t, int64_t,
                                          int64_t);
template void gemm_strided_batched<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                           int64_t, const double*, int64_t, int64_t, double, double*, int64_t,
                                           int64_t, int64_t);

// ---------------------------------------------------------------------------
// CudaBackend::matmul
// ---------------------------------------------------------------------------

void CudaBackend::matmul(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                         const int64_t* offa, const void* B, int64_t ldb, const int64_t* offb, void* C,
                         int64_t batch) {
  switch (dt) {
    case DType::Float32:
    case DType::Float64:
    case DType::Int64:
      break;
    default:
      throw TypeError(str("matmul: unsupported dtype ", dtype_name(dt)));
  }
  if (batch <= 0 || M <= 0 || N <= 0) return;
  switch (dt) {
    case DType::Float32:
      matmul_float<float>(ta, tb, M, N, K, static_cast<const float*>(A), lda, offa, static_cast<const float*>(B),
                          ldb, offb, static_cast<float*>(C), batch);
      break;
    case DType::Float64:
      matmul_float<double>(ta, tb, M, N, K, static_cast<const double*>(A), lda, offa,
                           static_cast<const double*>(B), ldb, offb, static_cast<double*>(C), batch);
      break;
    default:
      matmul_int64(ta, tb, M, N, K, static_cast<const int64_t*>(A), lda, offa, static_cast<const int64_t*>(B), ldb,
                   offb, static_cast<int64_t*>(C), batch);
      break;
  }
}

}  // namespace dlcore::cuda_impl
