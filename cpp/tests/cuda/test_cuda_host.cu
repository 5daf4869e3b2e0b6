// Host-side tests of the CUDA backend's GEMM and convolution logic: no GPU needed.
//
// Note [CUDA host tests]
//   gemm.cu and conv.cu are #included below, so this file sees their internals (the
//   anonymous namespaces): the phases of the fallback GEMM kernel (TileGemm), make_params,
//   matmul_float, FastDiv, the kernel argument builders and element functions of conv.cu,
//   make_plan, and the three conv passes, which are templates over an `Ops` type. This
//   program is therefore built from those sources directly and does NOT link dlcore_core:
//   its runtime.cu would clash with the stubs here.
//
//   What is real and what is emulated:
//   * Runtime (runtime.cu): check / current_stream / current_device / num_sms / Workspace
//     are stubbed (below). No kernel is ever launched: the paths under test never reach
//     a launch, and if one did, the launch would fail without a GPU and check() throws.
//   * Fallback GEMM kernel: emulate_gemm_fallback runs the kernel's phases, TileGemm::load
//     then TileGemm::compute (the code between two __syncthreads), for all 256 threads of a
//     block before the next phase, as the barriers order them on the GPU, then
//     TileGemm::store. Shared memory is refilled with NaN before every load phase, so a
//     compute phase that reads an element no thread loaded poisons the result.
//   * conv.cu's DeviceOps (kernel launches) is replaced by HostOps, which runs conv.cu's
//     own element functions (im2col_at, col2im_at, permute_src, bias_channel) for every
//     index of the kernel's range, serially; the weight-gradient reduction follows
//     reduce_parts_kernel's summation order. HostOps' GEMMs go to the fallback emulation
//     or, in the cuBLAS tests, through gemm.cu's real cuBLAS path (gemm_strided_batched ->
//     gemm_cublas) into the stand-ins of cublas_standin.cu, which reject what cuBLAS would.
//   * Every buffer has guard zones (inputs: NaN, so an out-of-range read poisons a result;
//     outputs and conv scratch: a sentinel checked afterwards, so an out-of-range write is
//     caught), outputs start as NaN (an element left unwritten fails the comparison), and
//     results are compared with a direct long-double reference.
//   Not covered here (the GPU tests in tests/test_cuda.py are): races, launch
//   configurations, asynchronous stream order, device memory, real cuBLAS numerics.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../src/kernels/cuda/gemm.cu"
#include "../../src/kernels/cuda/conv.cu"
#include "cublas_standin.h"

// ---------------------------------------------------------------------------
// Runtime stubs (the declarations are in cuda_backend.h / dtype.h)
// ---------------------------------------------------------------------------

namespace dlcore {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

namespace cuda_impl {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw RuntimeError(str("CUDA error in ", what, ": ", cudaGetErrorString(e), " (the host tests launch no kernels)"));
}
cudaStream_t current_stream() { return nullptr; }  // only ever handed to cublasSetStream (a stand-in)
int current_device() { return 0; }
int num_sms() { return 132; }  // not used: HostOps::sms() decides
Workspace::Workspace(size_t) { throw RuntimeError("Workspace: no device memory in the host tests"); }
Workspace::~Workspace() = default;

}  // namespace cuda_impl
}  // namespace dlcore

namespace dlcore::cuda_impl::host_tests {

using kernels::Conv2dShape;

// ---------------------------------------------------------------------------
// Buffers with guard zones
// ---------------------------------------------------------------------------

constexpr int64_t kGuard = 32;

template <class T>
T nan_value() {
  return std::numeric_limits<T>::quiet_NaN();
}
template <class T>
T sentinel() {
  return T(-7777.25);  // exactly representable; never a result of these tests
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// n elements (initially `body`) with kGuard elements of `guard` on each side.
template <class T>
class Guarded {
 public:
  Guarded(int64_t n, T body, T guard) : v_(static_cast<size_t>(n + 2 * kGuard), body), n_(n), guard_(guard) {
    std::fill(v_.begin(), v_.begin() + kGuard, guard);
    std::fill(v_.end() - kGuard, v_.end(), guard);
  }
  T* data() { return v_.data() + kGuard; }
  const T* data() const { return v_.data() + kGuard; }
  int64_t size() const { return n_; }
  T& operator[](int64_t i) { return data()[i]; }
  const T& operator[](int64_t i) const { return data()[i]; }
  bool guards_intact() const {
    for (int64_t i = 0; i < kGuard; ++i)
      if (!same_bits(v_[i], guard_) || !same_bits(v_[kGuard + n_ + i], guard_)) return false;
    return true;
  }

 private:
  std::vector<T> v_;
  int64_t n_;
  T guard_;
};

template <class T>
void fill_uniform(T* p, int64_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(u(rng));
}

// |got - want| / (1 + |want|); NaN counts as infinitely wrong.
template <class T>
double rel_err(T got, long double want) {
  const long double e = std::fabs(static_cast<long double>(got) - want) / (1.0L + std::fabs(want));
  return std::isnan(static_cast<double>(e)) ? std::numeric_limits<double>::infinity() : static_cast<double>(e);
}

// ---------------------------------------------------------------------------
// Emulation of the fallback GEMM kernel (gemm_tiled_kernel in gemm.cu)
// ---------------------------------------------------------------------------

template <class T, bool TA, bool TB>
void emulate_tiled_kernel(const GemmParams<T>& p) {
  using Tile = TileGemm<T, TA, TB>;
  GemmSmem<T> sm;
  static T acc[kGemmThreads][Tile::kRegM][Tile::kRegN];  // each thread's registers
  // The kernel's grid-stride loops cover every (batch, tile) pair once, whatever the grid.
  for (int64_t z = 0; z < p.batch; ++z) {
    const T* A = p.A + z * p.sa;
    const T* B = p.B + z * p.sb;
    T* C = p.C + z * p.sc;
    for (int64_t t = 0; t < p.tiles; ++t) {
      const int64_t m0 = (t / p.tiles_n) * kTileM, n0 = (t % p.tiles_n) * kTileN;
      for (auto& a : acc)
        for (auto& row : a)
          for (T& v : row) v = T(0);
      for (int64_t k0 = 0; k0 < p.K; k0 += kTileK) {
        for (auto& row : sm.a)
          for (T& v : row) v = nan_value<T>();
        for (auto& row : sm.b)
          for (T& v : row) v = nan_value<T>();
        for (int tid = 0; tid < kGemmThreads; ++tid) Tile::load(sm, tid, p, A, B, m0, n0, k0);
        // __syncthreads()
        for (int tid = 0; tid < kGemmThreads; ++tid) Tile::compute(sm, tid, acc[tid]);
        // __syncthreads()
      }
      for (int tid = 0; tid < kGemmThreads; ++tid) Tile::store(tid, acc[tid], p, C, m0, n0);
    }
  }
}

// What gemm_strided_batched does without cuBLAS: the early return, make_params, then the
// kernel specialised on the transpose flags (gemm_fallback), here emulated.
template <class T>
void emulate_gemm_fallback(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                           int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                           int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const GemmParams<T> p =
      make_params<T>(M, N, std::max<int64_t>(K, 0), alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
  if (!ta && !tb)
    emulate_tiled_kernel<T, false, false>(p);
  else if (!ta && tb)
    emulate_tiled_kernel<T, false, true>(p);
  else if (ta && !tb)
    emulate_tiled_kernel<T, true, false>(p);
  else
    emulate_tiled_kernel<T, true, true>(p);
}

// ---------------------------------------------------------------------------
// GEMM problems with poisoned padding
// ---------------------------------------------------------------------------

struct GemmCase {
  bool ta = false, tb = false;
  int64_t M = 1, N = 1, K = 1, batch = 1;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // leading dimension - stored columns
  bool share_a = false, share_b = false;    // stride 0: one operand for every product
  bool tight_ld = false;  // an operand stored as a single row gets leading dimension 1
  double alpha = 1, beta = 0;  // beta == 0: C starts as NaN (must not be read)

  std::string str() const {
    return dlcore::str("ta=", ta, " tb=", tb, " M=", M, " N=", N, " K=", K, " batch=", batch, " pads=", pad_a, ",",
                       pad_b, ",", pad_c, " share=", share_a, ",", share_b, " tight_ld=", tight_ld,
                       " alpha=", alpha, " beta=", beta);
  }
};

// A stored row-major rows x cols matrix with leading dimension ld, `batch` times `stride`
// apart, in a guarded buffer. Everything but the matrices' elements holds `fill`.
template <class T>
struct StridedOperand {
  int64_t rows, cols, ld, stride, batch;
  Guarded<T> buf;

  static int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0; }
  StridedOperand(int64_t r, int64_t c, int64_t ld_, bool shared, int64_t b, T fill)
      : rows(r), cols(c), ld(ld_), stride(shared ? 0 : span(r, c, ld_) + 3), batch(b),
        buf(stride * std::max<int64_t>(b - 1, 0) + span(r, c, ld_), fill, fill) {}
  T& at(int64_t z, int64_t i, int64_t j) { return buf[z * stride + i * ld + j]; }
  template <class F>
  void for_each(F&& f) {  // f(z, i, j) over the matrices' elements
    for (int64_t z = 0; z < (stride == 0 ? std::min<int64_t>(batch, 1) : batch); ++z)
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) f(z, i, j);
  }
};

template <class T>
using GemmFn = void (*)(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*, int64_t,
                        int64_t, T, T*, int64_t, int64_t, int64_t);

// Runs `gemm` on the case and checks C (tolerance `tol`), that nothing but C's elements
// changed, and returns whether all held (failures are reported).
template <class T>
bool check_gemm(const GemmCase& c, GemmFn<T> gemm, double tol, std::mt19937_64& rng) {
  const int64_t ra = c.ta ? c.K : c.M, ca = c.ta ? c.M : c.K;  // stored shapes
  const int64_t rb = c.tb ? c.N : c.K, cb = c.tb ? c.K : c.N;
  const int64_t lda = c.tight_ld && ra == 1 ? 1 : std::max<int64_t>(1, ca + c.pad_a);
  const int64_t ldb = c.tight_ld && rb == 1 ? 1 : std::max<int64_t>(1, cb + c.pad_b);
  const int64_t ldc = std::max<int64_t>(1, c.N + c.pad_c);
  StridedOperand<T> A(ra, ca, lda, c.share_a, c.batch, nan_value<T>());
  StridedOperand<T> B(rb, cb, ldb, c.share_b, c.batch, nan_value<T>());
  StridedOperand<T> C(c.M, c.N, ldc, false, c.batch, sentinel<T>());
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  A.for_each([&](int64_t z, int64_t i, int64_t j) { A.at(z, i, j) = static_cast<T>(u(rng)); });
  B.for_each([&](int64_t z, int64_t i, int64_t j) { B.at(z, i, j) = static_cast<T>(u(rng)); });
  C.for_each([&](int64_t z, int64_t i, int64_t j) {
    C.at(z, i, j) = c.beta == 0 ? nan_value<T>() : static_cast<T>(u(rng));
  });
  std::vector<long double> want(static_cast<size_t>(std::max<int64_t>(C.buf.size(), 0)));
  C.for_each([&](int64_t z, int64_t i, int64_t j) {
    long double acc = 0;
    for (int64_t k = 0; k < c.K; ++k)
      acc += static_cast<long double>(c.ta ? A.at(c.share_a ? 0 : z, k, i) : A.at(c.share_a ? 0 : z, i, k)) *
             (c.tb ? B.at(c.share_b ? 0 : z, j, k) : B.at(c.share_b ? 0 : z, k, j));
    long double v = static_cast<long double>(static_cast<T>(c.alpha)) * acc;
    if (c.beta != 0) v += static_cast<long double>(static_cast<T>(c.beta)) * C.at(z, i, j);
    want[z * C.stride + i * ldc + j] = v;
  });
  const std::vector<T> before(C.buf.data(), C.buf.data() + C.buf.size());
  gemm(c.ta, c.tb, c.M, c.N, c.K, static_cast<T>(c.alpha), A.buf.data(), lda, A.stride, B.buf.data(), ldb, B.stride,
       static_cast<T>(c.beta), C.buf.data(), ldc, C.stride, c.batch);
  // Elements of C: within tolerance; everything else: untouched.
  std::vector<char> inside(before.size(), 0);
  double worst = 0;
  C.for_each([&](int64_t z, int64_t i, int64_t j) {
    const int64_t o = z * C.stride + i * ldc + j;
    inside[o] = 1;
    worst = std::max(worst, rel_err(C.buf[o], want[o]));
  });
  bool ok = true;
  if (!(worst <= tol)) {
    ADD_FAILURE() << "GEMM " << c.str() << ": error " << worst << " > " << tol;
    ok = false;
  }
  for (size_t o = 0; o < before.size() && ok; ++o)
    if (!inside[o] && !same_bits(C.buf[o], before[o])) {
      ADD_FAILURE() << "GEMM " << c.str() << ": wrote element " << o << " outside C";
      ok = false;
    }
  if (ok && !C.buf.guards_intact()) {
    ADD_FAILURE() << "GEMM " << c.str() << ": wrote past the end of C's buffer";
    ok = false;
  }
  return ok;
}

// Hand-picked sizes around the 64 x 64 x 16 tile (odd, exact, one off, thin), K = 0, and
// random ones, for all four transpose combinations and several batch / stride / scaling
// variants. `with_k0` drops K == 0 (cuBLAS is never called with it).
template <class T>
std::vector<GemmCase> gemm_cases(bool with_k0, uint64_t seed) {
  const int64_t sizes[][3] = {{1, 1, 1},    {2, 3, 1},    {63, 65, 17}, {64, 64, 16}, {65, 63, 15}, {17, 130, 40},
                              {130, 17, 33}, {3, 200, 1}, {200, 3, 2},  {1, 70, 20},  {70, 1, 20},  {33, 31, 70},
                              {5, 7, 0},    {1, 1, 0},    {66, 65, 0}};
  std::vector<GemmCase> cases;
  for (int tr = 0; tr < 4; ++tr)
    for (const auto& sz : sizes) {
      if (sz[2] == 0 && !with_k0) continue;
      for (int v = 0; v < 3; ++v) {
        GemmCase c;
        c.ta = tr & 1;
        c.tb = tr & 2;
        c.M = sz[0];
        c.N = sz[1];
        c.K = sz[2];
        if (v == 0) {  // single product, beta == 0 with NaN in C, degenerate leading dims
          c.tight_ld = true;
        } else if (v == 1) {  // batch, padded rows, broadcast B, both scalings
          c.batch = 3;
          c.pad_a = 1;
          c.pad_b = 2;
          c.pad_c = 3;
          c.share_b = true;
          c.alpha = 0.75;
          c.beta = -0.5;
        } else {  // batch, broadcast A, beta == 1
          c.batch = 2;
          c.pad_a = 2;
          c.pad_c = 1;
          c.share_a = true;
          c.beta = 1;
        }
        cases.push_back(c);
      }
    }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> size(1, 140), pad(0, 3), batch(1, 3), coin(0, 1);
  for (int i = 0; i < 24; ++i) {
    GemmCase c;
    c.ta = i & 1;
    c.tb = i & 2;
    c.M = size(rng);
    c.N = size(rng);
    c.K = with_k0 && i % 11 == 0 ? 0 : size(rng);
    c.batch = batch(rng);
    c.pad_a = pad(rng);
    c.pad_b = pad(rng);
    c.pad_c = pad(rng);
    c.share_b = coin(rng);
    c.alpha = coin(rng) ? 1.0 : 0.75;
    c.beta = i % 3 == 0 ? 0.0 : -0.5;
    cases.push_back(c);
  }
  return cases;
}

// ---------------------------------------------------------------------------
// Host Ops for conv.cu's passes
// ---------------------------------------------------------------------------

enum class GemmRoute { Fallback, Cublas };

int g_sms = 132;                 // HostOps::sms(): the split heuristics depend on it
int64_t g_scratch_overruns = 0;  // scratch buffers whose guards were overwritten

// What one conv pass did, from the Ops calls it made.
struct PassTrace {
  int im2col_whole = 0, im2col_band = 0, im2col_image_major = 0, im2col_pixel_major = 0;
  int col2im_whole = 0, col2im_band = 0, permute = 0, reduce = 0, zero = 0, gemm = 0, bias = 0;
};
PassTrace g_trace;

template <class T, GemmRoute kRoute>
struct HostOps {
  // Scratch: NaN (an element read before it is written poisons the result) between
  // sentinel guards, checked when the buffer goes away.
  class Buffer {
   public:
    explicit Buffer(int64_t n) : n_(n), buf_(std::max<int64_t>(n, 0), nan_value<T>(), sentinel<T>()) {}
    ~Buffer() {
      if (!buf_.guards_intact()) ++g_scratch_overruns;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    T* get() { return n_ > 0 ? buf_.data() : nullptr; }

   private:
    int64_t n_;
    Guarded<T> buf_;
  };

  static int sms() { return g_sms; }

  static void im2col(const T* x, T* col, const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, bool pixel_major) {
    (p0 == 0 && p1 == s.P ? g_trace.im2col_whole : g_trace.im2col_band)++;
    (pixel_major ? g_trace.im2col_pixel_major : g_trace.im2col_image_major)++;
    const Im2colArgs a = im2col_args(s, nb, p0, p1, pixel_major);
    for (uint32_t i = 0; i < a.total; ++i)
      col[i] = pixel_major ? im2col_at<T, true>(x, a, i) : im2col_at<T, false>(x, a, i);
  }

  static void col2im(const T* dcol, T* dx, const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, int64_t h0,
                     int64_t h1, bool accumulate) {
    (accumulate ? g_trace.col2im_band : g_trace.col2im_whole)++;
    const Col2imArgs a = col2im_args(s, nb, p0, p1, h0, h1, accumulate);
    for (uint32_t i = 0; i < a.total; ++i) {
      int64_t off;
      const T v = col2im_at<T>(dcol, a, i, off);
      dx[off] = a.accumulate ? dx[off] + v : v;
    }
  }

  static void permute(const T* dy, T* dst, int64_t nb, int64_t K, int64_t PQ) {
    ++g_trace.permute;
    const PermuteArgs a = permute_args(nb, K, PQ);
    for (uint32_t i = 0; i < a.total; ++i) dst[i] = dy[permute_src(a, i)];
  }

  // As DeviceOps::add_bias: pieces of whole images with 32-bit indices.
  static void add_bias(T* y, const T* bias, int64_t N, int64_t K, int64_t PQ) {
    ++g_trace.bias;
    const int64_t per_image = K * PQ;
    if (N <= 0 || per_image <= 0) return;
    const int64_t step = std::max<int64_t>(1, (int64_t(INT_MAX) - 1) / per_image);
    for (int64_t n0 = 0; n0 < N; n0 += step) {
      BiasArgs a{};
      a.total = static_cast<uint32_t>(std::min(step, N - n0) * per_image);
      a.fPQ = FastDiv(PQ);
      a.fK = FastDiv(K);
      for (uint32_t i = 0; i < a.total; ++i) y[n0 * per_image + i] += bias[bias_channel(a, i)];
    }
  }

  // reduce_parts_kernel's order: slice y of output i sums parts y, y + kPartSlices, ...;
  // the slices are then added to (accumulate ? dw[i] : 0) in ascending y.
  static void reduce_parts(const T* part, T* dw, int64_t n, int64_t parts, bool accumulate) {
    ++g_trace.reduce;
    for (int64_t i = 0; i < n; ++i) {
      T total = accumulate ? dw[i] : T(0);
      for (int y = 0; y < kPartSlices; ++y) {
        T acc = T(0);
        for (int64_t t = y; t < parts; t += kPartSlices) acc += part[t * n + i];
        total += acc;
      }
      dw[i] = total;
    }
  }

  static void zero(T* p, int64_t n) {
    ++g_trace.zero;
    std::fill(p, p + std::max<int64_t>(n, 0), T(0));
  }

  static void gemm_sb(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                      int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                      int64_t batch) {
    ++g_trace.gemm;
    // gemm_strided_batched sends K == 0 to the fallback kernel even with cuBLAS: emulated.
    if (kRoute == GemmRoute::Cublas && K > 0)
      gemm_strided_batched<T>(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
    else
      emulate_gemm_fallback<T>(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
  }
};

// ---------------------------------------------------------------------------
// Conv checks
// ---------------------------------------------------------------------------

Conv2dShape conv_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
  Conv2dShape s{N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, groups, 0, 0};
  s.P = (H + 2 * ph - dh * (R - 1) - 1) / sh + 1;
  s.Q = (W + 2 * pw - dw * (S - 1) - 1) / sw + 1;
  return s;
}

std::string describe(const Conv2dShape& s) {
  return str("N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W, " K=", s.K, " RxS=", s.R, "x", s.S, " stride=", s.stride_h,
             ",", s.stride_w, " pad=", s.pad_h, ",", s.pad_w, " dil=", s.dil_h, ",", s.dil_w, " groups=", s.groups,
             " -> P=", s.P, " Q=", s.Q);
}

// Which lowering each pass took, counted over a suite (Note [CUDA conv]).
struct ConvCoverage {
  int fwd_direct = 0, fwd_one_item = 0, fwd_chunked = 0, fwd_banded = 0;
  int dx_direct = 0, dx_one_item = 0, dx_chunked = 0, dx_banded = 0, dx_zero = 0;
  int dw_unsplit = 0, dw_per_image = 0, dw_segments = 0, dw_permuted = 0, dw_banded = 0, dw_zero = 0;

  void add_forward(const PassTrace& t) {
    if (t.gemm > 0 && t.im2col_whole + t.im2col_band == 0) ++fwd_direct;
    if (t.im2col_band > 0) ++fwd_banded;
    if (t.im2col_whole == 1) ++fwd_one_item;
    if (t.im2col_whole > 1) ++fwd_chunked;
  }
  void add_input_grad(const PassTrace& t) {
    if (t.gemm > 0 && t.col2im_whole + t.col2im_band == 0) ++dx_direct;
    if (t.col2im_band > 0) ++dx_banded;
    if (t.col2im_whole == 1) ++dx_one_item;
    if (t.col2im_whole > 1) ++dx_chunked;
    if (t.gemm == 0 && t.zero > 0) ++dx_zero;
  }
  void add_weight_grad(const PassTrace& t) {
    if (t.gemm == 0 && t.zero > 0) ++dw_zero;
    if (t.gemm > 0 && t.reduce == 0) ++dw_unsplit;
    if (t.reduce > 0 && t.im2col_image_major > 0) ++dw_per_image;
    if (t.reduce > 0 && t.im2col_pixel_major > 0) ++dw_segments;
    if (t.permute > 0) ++dw_permuted;
    if (t.im2col_band > 0) ++dw_banded;
  }
};

// Scratch budgets (bytes) for a shape: the default, enough for 3 images / 1 image of the
// weight gradient's scratch (several items of whole images), and small ones that force
// bands of output rows (down to one row per item).
template <class T>
std::vector<int64_t> budgets_for(const Conv2dShape& s) {
  const int64_t per_image = (s.C * s.R * s.S + s.K) * s.P * s.Q * static_cast<int64_t>(sizeof(T));
  return {int64_t(256) << 20, 3 * per_image, per_image, 4000, 1000, 64};
}

// Runs the three passes of conv.cu with HostOps on random data and compares them with a
// direct convolution. Returns whether all held (failures are reported).
template <class T, GemmRoute kRoute>
bool check_conv(const Conv2dShape& s, int64_t budget, bool with_bias, double tol, std::mt19937_64& rng,
                ConvCoverage* cov) {
  using Ops = HostOps<T, kRoute>;
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t nx = s.N * s.C * s.H * s.W, nw = s.K * Cg * s.R * s.S, ny = s.N * s.K * s.P * s.Q;
  Guarded<T> x(nx, T(0), nan_value<T>()), w(nw, T(0), nan_value<T>()), b(s.K, T(0), nan_value<T>()),
      dy(ny, T(0), nan_value<T>());
  fill_uniform(x.data(), nx, rng);
  fill_uniform(w.data(), nw, rng);
  fill_uniform(b.data(), s.K, rng);
  fill_uniform(dy.data(), ny, rng);

  // Direct convolution: every tap (n, k, c, r, t, p, q) that lands inside the input.
  std::vector<long double> y_ref(ny, 0), dx_ref(nx, 0), dw_ref(nw, 0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t g = k / Kg;
      for (int64_t pq = 0; pq < s.P * s.Q; ++pq) y_ref[(n * s.K + k) * s.P * s.Q + pq] = with_bias ? b[k] : T(0);
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t)
            for (int64_t p = 0; p < s.P; ++p)
              for (int64_t q = 0; q < s.Q; ++q) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h, wc = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h < 0 || h >= s.H || wc < 0 || wc >= s.W) continue;
                const int64_t xi = ((n * s.C + g * Cg + c) * s.H + h) * s.W + wc;
                const int64_t wi = ((k * Cg + c) * s.R + r) * s.S + t;
                const int64_t yi = ((n * s.K + k) * s.P + p) * s.Q + q;
                y_ref[yi] += static_cast<long double>(x[xi]) * w[wi];
                dx_ref[xi] += static_cast<long double>(dy[yi]) * w[wi];
                dw_ref[wi] += static_cast<long double>(dy[yi]) * x[xi];
              }
    }

  Guarded<T> y(ny, nan_value<T>(), sentinel<T>()), dx(nx, nan_value<T>(), sentinel<T>()),
      dw(nw, nan_value<T>(), sentinel<T>());
  const int64_t overruns = g_scratch_overruns;
  PassTrace fwd, din, dwt;
  g_trace = {};
  conv_forward<T, Ops>(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), s, budget);
  fwd = g_trace;
  g_trace = {};
  conv_backward_input<T, Ops>(dy.data(), w.data(), dx.data(), s, budget);
  din = g_trace;
  g_trace = {};
  conv_backward_weight<T, Ops>(x.data(), dy.data(), dw.data(), s, budget);
  dwt = g_trace;

  const std::string where = str(describe(s), " budget=", budget, " sms=", g_sms, " bias=", with_bias);
  bool ok = true;
  auto compare = [&](const char* what, const Guarded<T>& got, const std::vector<long double>& want) {
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < got.size(); ++i) {
      const double e = rel_err(got[i], want[i]);
      if (e > worst || at < 0) {
        worst = e;
        at = i;
      }
    }
    if (!(worst <= tol)) {
      ADD_FAILURE() << what << " of " << where << ": error " << worst << " > " << tol << " at " << at << " (got "
                    << static_cast<double>(got[at]) << ", want " << static_cast<double>(want[at]) << ")";
      ok = false;
    }
    if (!got.guards_intact()) {
      ADD_FAILURE() << what << " of " << where << ": wrote outside the output";
      ok = false;
    }
  };
  compare("forward", y, y_ref);
  compare("input grad", dx, dx_ref);
  compare("weight grad", dw, dw_ref);
  if (g_scratch_overruns != overruns) {
    ADD_FAILURE() << where << ": wrote outside a scratch buffer";
    ok = false;
  }
  if (cov != nullptr) {
    cov->add_forward(fwd);
    cov->add_input_grad(din);
    cov->add_weight_grad(dwt);
  }
  return ok;
}

// Representative shapes: LeNet's two convolutions, padding, groups with stride and
// dilation, depthwise, 1x1 (direct, grouped, strided), stride > kernel (input rows no
// output reads), padding wider than the kernel, 1x1 output, N = 0, K = 0, and an image
// with a long pixel dimension (the weight gradient splits it into segments).
std::vector<Conv2dShape> conv_shapes() {
  return {
      conv_shape(4, 1, 28, 28, 6, 5, 5, 1, 1, 0, 0, 1, 1, 1),    // LeNet conv1
      conv_shape(4, 6, 12, 12, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1),   // LeNet conv2
      conv_shape(3, 3, 9, 11, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1),     // 3x3, padding 1
      conv_shape(2, 4, 10, 9, 6, 3, 2, 2, 3, 1, 2, 2, 1, 2),     // groups, stride, dilation, padding
      conv_shape(2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6),      // depthwise
      conv_shape(3, 8, 6, 5, 12, 1, 1, 1, 1, 0, 0, 1, 1, 1),     // 1x1: x is the column matrix
      conv_shape(2, 8, 6, 5, 12, 1, 1, 1, 1, 0, 0, 3, 3, 4),     // 1x1 grouped (dilation is moot)
      conv_shape(2, 8, 7, 7, 4, 1, 1, 2, 2, 0, 0, 1, 1, 2),      // 1x1 stride 2: im2col
      conv_shape(2, 3, 8, 8, 5, 2, 2, 3, 3, 0, 0, 1, 1, 1),      // stride > kernel
      conv_shape(2, 3, 5, 6, 4, 3, 3, 2, 1, 3, 2, 1, 2, 1),      // padding wider than the kernel
      conv_shape(1, 2, 4, 4, 3, 4, 4, 1, 1, 0, 0, 1, 1, 1),      // P = Q = 1
      conv_shape(0, 2, 4, 4, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1),      // N = 0
      conv_shape(2, 2, 4, 4, 0, 3, 3, 1, 1, 0, 0, 1, 1, 1),      // K = 0
      conv_shape(5, 2, 16, 16, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1),    // 256 pixels per image
      conv_shape(2, 3, 29, 29, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),    // 841 pixels: uneven segments
  };
}

// Every shape x budget x SM count (the split heuristics aim at 2 blocks per SM), bias on
// every other run; then every lowering must have been taken at least once.
template <class T, GemmRoute kRoute>
void run_conv_suite(double tol, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ConvCoverage cov;
  int failures = 0;
  for (const Conv2dShape& s : conv_shapes())
    for (int64_t budget : budgets_for<T>(s))
      for (int sms : {132, 1, 1000}) {
        g_sms = sms;
        if (!check_conv<T, kRoute>(s, budget, sms != 1, tol, rng, &cov) && ++failures >= 10) {
          g_sms = 132;
          FAIL() << "stopping after 10 failing convolutions";
        }
      }
  g_sms = 132;
  EXPECT_GT(cov.fwd_direct, 0) << "forward: 1x1 direct";
  EXPECT_GT(cov.fwd_one_item, 0) << "forward: all images in one item";
  EXPECT_GT(cov.fwd_chunked, 0) << "forward: several items of whole images";
  EXPECT_GT(cov.fwd_banded, 0) << "forward: bands of output rows";
  EXPECT_GT(cov.dx_direct, 0) << "input grad: 1x1 direct";
  EXPECT_GT(cov.dx_one_item, 0) << "input grad: all images in one item";
  EXPECT_GT(cov.dx_chunked, 0) << "input grad: several items of whole images";
  EXPECT_GT(cov.dx_banded, 0) << "input grad: bands (zero, then accumulate)";
  EXPECT_GT(cov.dx_zero, 0) << "input grad: K = 0 zero fill";
  EXPECT_GT(cov.dw_unsplit, 0) << "weight grad: one GEMM per item";
  EXPECT_GT(cov.dw_per_image, 0) << "weight grad: per-image partials";
  EXPECT_GT(cov.dw_segments, 0) << "weight grad: pixel segments";
  EXPECT_GT(cov.dw_permuted, 0) << "weight grad: permuted dy";
  EXPECT_GT(cov.dw_banded, 0) << "weight grad: bands";
  EXPECT_GT(cov.dw_zero, 0) << "weight grad: N = 0 zero fill";
}

// Random small shapes (groups, kernel, stride, dilation, padding, N = 0), random budgets
// and SM counts, float64.
template <GemmRoute kRoute>
void run_random_convs(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> u(0, 1 << 20);
  const int64_t budgets[] = {int64_t(256) << 20, 20000, 4000, 700, 64, 8};
  const int sms[] = {1, 2, 132, 1000};
  int done = 0, failures = 0;
  while (done < count) {
    const int64_t G = 1 + u(rng) % 3, Cg = 1 + u(rng) % 3, Kg = 1 + u(rng) % 4;
    const int64_t R = 1 + u(rng) % 4, S = 1 + u(rng) % 4, sh = 1 + u(rng) % 3, sw = 1 + u(rng) % 3;
    const int64_t dh = 1 + u(rng) % 2, dw = 1 + u(rng) % 3, ph = u(rng) % 3, pw = u(rng) % 3;
    const int64_t H = 1 + u(rng) % 12, W = 1 + u(rng) % 12, N = u(rng) % 5;
    if (dh * (R - 1) + 1 > H + 2 * ph || dw * (S - 1) + 1 > W + 2 * pw) continue;  // no output
    const Conv2dShape s = conv_shape(N, G * Cg, H, W, G * Kg, R, S, sh, sw, ph, pw, dh, dw, G);
    g_sms = sms[u(rng) % 4];
    const bool ok = check_conv<double, kRoute>(s, budgets[u(rng) % 6], u(rng) % 2, 1e-12, rng, nullptr);
    ++done;
    if (!ok && ++failures >= 10) break;
  }
  g_sms = 132;
}

// ---------------------------------------------------------------------------
// Tests: FastDiv
// ---------------------------------------------------------------------------

TEST(CudaHostFastDiv, MatchesDivisionOver31Bits) {
  // Contract: 0 <= n < 2^31, 1 <= d < 2^31.
  const uint32_t kMaxN = uint32_t(INT_MAX);
  for (uint32_t d = 1; d < 2048; ++d) {
    const FastDiv f(d);
    for (uint32_t n = 0; n < 4096; ++n) ASSERT_EQ(f.div(n), n / d) << "n=" << n << " d=" << d;
    for (uint32_t n : {kMaxN, kMaxN - 1, kMaxN - d, kMaxN / d * d, kMaxN / d * d - 1}) {
      uint32_t q = 0;
      const uint32_t r = f.divmod(n, q);
      ASSERT_EQ(q, n / d) << "n=" << n << " d=" << d;
      ASSERT_EQ(r, n % d) << "n=" << n << " d=" << d;
    }
  }
  std::vector<uint32_t> divisors;
  for (int b = 1; b < 31; ++b)
    for (int64_t e : {-1, 0, 1}) divisors.push_back(static_cast<uint32_t>((int64_t(1) << b) + e));
  divisors.push_back(kMaxN);
  divisors.push_back(kMaxN - 1);
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<uint32_t> any(1, kMaxN), any_n(0, kMaxN);
  for (int i = 0; i < 100000; ++i) divisors.push_back(any(rng));
  for (uint32_t d : divisors) {
    const FastDiv f(d);
    for (uint32_t n : {0u, 1u, d - 1, d, d < kMaxN ? d + 1 : d, d <= kMaxN / 2 ? 2 * d - 1 : 0u,
                       d <= kMaxN / 2 ? 2 * d : 0u, kMaxN, kMaxN - 1, any_n(rng), any_n(rng)}) {
      uint32_t q = 0;
      const uint32_t r = f.divmod(n, q);
      ASSERT_EQ(q, n / d) << "n=" << n << " d=" << d;
      ASSERT_EQ(r, n % d) << "n=" << n << " d=" << d;
    }
  }
}

TEST(CudaHostFastDiv, NonPositiveDivisorActsAsOne) {
  // Empty extents reach FastDiv as 0 (e.g. a 0-pixel item); it must not divide by zero.
  for (int64_t d : {int64_t(0), int64_t(-3)}) {
    const FastDiv f(d);
    EXPECT_EQ(f.div(12345u), 12345u);
  }
}

// ---------------------------------------------------------------------------
// Tests: the fallback GEMM kernel's tile logic
// ---------------------------------------------------------------------------

template <class T>
void run_tiled_gemm_cases(double tol, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int failures = 0;
  for (const GemmCase& c : gemm_cases<T>(true, seed))
    if (!check_gemm<T>(c, &emulate_gemm_fallback<T>, tol, rng) && ++failures >= 10)
      FAIL() << "stopping after 10 failing GEMMs";
}

TEST(CudaHostTiledGemm, Float64AllTransposes) { run_tiled_gemm_cases<double>(1e-12, 11); }
TEST(CudaHostTiledGemm, Float32AllTransposes) { run_tiled_gemm_cases<float>(1e-5, 12); }

TEST(CudaHostTiledGemm, KZeroScalesC) {
  // C = beta C without reading A or B (null here); beta == 0 overwrites NaN with zeros.
  for (double beta : {0.0, 2.0}) {
    std::vector<double> C(7 * 9, beta == 0 ? nan_value<double>() : 1.5);
    emulate_gemm_fallback<double>(false, true, 7, 9, 0, 1.0, nullptr, 1, 0, nullptr, 1, 0, beta, C.data(), 9, 0, 1);
    const double want = beta == 0 ? 0.0 : beta * 1.5;
    for (double v : C) ASSERT_EQ(v, want) << "beta=" << beta;
  }
}

TEST(CudaHostTiledGemm, EmptyProductsReturnBeforeLaunching) {
  // gemm_strided_batched itself (no emulation): M, N or batch <= 0 must return before any
  // launch (a launch here would throw) and leave C alone.
  std::vector<float> C(16, sentinel<float>());
  const float A[4] = {1, 2, 3, 4};
  const int64_t shapes[][3] = {{0, 4, 1}, {4, 0, 1}, {4, 4, 0}, {-1, 4, 1}};
  for (const auto& sh : shapes) {
    EXPECT_NO_THROW(gemm_strided_batched<float>(false, false, sh[0], sh[1], 1, 1.0f, A, 1, 0, A, 4, 0, 0.0f, C.data(),
                                                4, 16, sh[2]));
    for (float v : C) ASSERT_TRUE(same_bits(v, sentinel<float>()));
  }
}

// ---------------------------------------------------------------------------
// Tests: convolution lowering (fallback GEMM emulated)
// ---------------------------------------------------------------------------

TEST(CudaHostConv, Float64AllPaths) { run_conv_suite<double, GemmRoute::Fallback>(1e-12, 21); }
TEST(CudaHostConv, Float32AllPaths) { run_conv_suite<float, GemmRoute::Fallback>(5e-5, 22); }
TEST(CudaHostConv, RandomShapesFloat64) { run_random_convs<GemmRoute::Fallback>(250, 23); }

TEST(CudaHostConv, LeNetBatch64Float32) {
  // Training-sized LeNet layers at the default budget: the per-image weight-gradient split
  // with 64 partials, and the permuted one.
  std::mt19937_64 rng(24);
  ConvCoverage cov;
  check_conv<float, GemmRoute::Fallback>(conv_shape(64, 1, 28, 28, 6, 5, 5, 1, 1, 0, 0, 1, 1, 1), int64_t(256) << 20,
                                         true, 1e-4, rng, &cov);
  check_conv<float, GemmRoute::Fallback>(conv_shape(16, 6, 12, 12, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1),
                                         int64_t(256) << 20, true, 1e-4, rng, &cov);
  EXPECT_EQ(cov.dw_per_image, 1);
  EXPECT_EQ(cov.dw_permuted, 1);
}

TEST(CudaHostConv, OversizedImageIsRejected) {
  // One image of 2^31 or more elements does not fit the 32-bit item indices: refused
  // before any scratch or memory access (null pointers here).
  const Conv2dShape s = conv_shape(1, 2, 40000, 40000, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1);
  using Ops = HostOps<float, GemmRoute::Fallback>;
  EXPECT_THROW((conv_forward<float, Ops>(nullptr, nullptr, nullptr, nullptr, s, int64_t(256) << 20)), RuntimeError);
  EXPECT_THROW((conv_backward_input<float, Ops>(nullptr, nullptr, nullptr, s, int64_t(256) << 20)), RuntimeError);
  EXPECT_THROW((conv_backward_weight<float, Ops>(nullptr, nullptr, nullptr, s, int64_t(256) << 20)), RuntimeError);
}

TEST(CudaHostConv, PlansRespectBudgetAnd32BitIndices) {
  std::mt19937_64 rng(25);
  std::uniform_int_distribution<int64_t> dim(1, 64), small(1, 5), budget_log(3, 30);
  for (int i = 0; i < 5000; ++i) {
    const int64_t R = small(rng), S = small(rng);
    const Conv2dShape s = conv_shape(dim(rng), small(rng), R + dim(rng), S + dim(rng), small(rng), R, S, 1, 1, 0, 0,
                                     1, 1, 1);
    const int64_t scratch_px = s.C * s.R * s.S + (i % 2 ? s.K : 0);
    const size_t elem = i % 3 ? 4 : 8;
    const int64_t budget = int64_t(1) << budget_log(rng);
    const Plan pl = make_plan(s, scratch_px, std::max(s.C * s.H * s.W, s.K * s.P * s.Q), elem, budget);
    const int64_t budget_elems = std::max<int64_t>(1, budget / static_cast<int64_t>(elem));
    const std::string where = str(describe(s), " scratch/px=", scratch_px, " elem=", elem, " budget=", budget);
    ASSERT_GE(pl.nb, 1) << where;
    ASSERT_GE(pl.rows, 1) << where;
    ASSERT_LE(pl.rows, s.P) << where;
    const int64_t scratch = pl.nb * scratch_px * pl.rows * s.Q;
    ASSERT_LT(scratch, int64_t(INT_MAX)) << where;
    if (pl.nb > 1 || pl.rows > 1) ASSERT_LE(scratch, budget_elems) << where;  // one row may exceed it
    if (pl.rows < s.P) ASSERT_EQ(pl.nb, 1) << where;                          // bands are of one image
  }
}

// ---------------------------------------------------------------------------
// Tests: gemm.cu's cuBLAS path, against the stand-ins of cublas_standin.cu
// ---------------------------------------------------------------------------

#ifdef DLCORE_HAVE_CUBLAS

#define SKIP_UNLESS_CUBLAS()                                                                   \
  if (std::strcmp(gemm_impl(), "cublas") != 0)                                                 \
  GTEST_SKIP() << "gemm.cu does not use cuBLAS here (DLCORE_CUDA_GEMM=fallback in the environment?)"

template <class T>
void run_cublas_gemm_cases(double tol, uint64_t seed) {
  SKIP_UNLESS_CUBLAS();
  auto& st = cublas_standin::stats();
  std::mt19937_64 rng(seed);
  int failures = 0;
  for (const GemmCase& c : gemm_cases<T>(false, seed)) {
    const long gemm0 = st.gemm_calls, strided0 = st.strided_calls;
    bool ok = false;
    try {
      ok = check_gemm<T>(c, &gemm_strided_batched<T>, tol, rng);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "GEMM " << c.str() << ": " << e.what();
    }
    // One cuBLAS call per product: the plain GEMM for one product, else strided-batched.
    if (ok) {
      EXPECT_EQ(st.gemm_calls - gemm0, c.batch == 1 ? 1 : 0) << c.str();
      EXPECT_EQ(st.strided_calls - strided0, c.batch == 1 ? 0 : 1) << c.str();
    }
    if (!ok && ++failures >= 10) FAIL() << "stopping after 10 failing GEMMs";
  }
  EXPECT_EQ(st.rejected, 0) << "last rejected argument: " << st.last_rejection;
  EXPECT_EQ(st.handles_created, 1);
  EXPECT_TRUE(st.math_mode_set);
  EXPECT_EQ(st.math_mode, CUBLAS_DEFAULT_MATH) << "TF32 or other reduced-precision math was enabled";
}

TEST(CudaHostCublas, GemmFloat64) { run_cublas_gemm_cases<double>(1e-12, 31); }
TEST(CudaHostCublas, GemmFloat32) { run_cublas_gemm_cases<float>(1e-5, 32); }

TEST(CudaHostCublas, MatmulBatchRuns) {
  // matmul_float splits a batch into runs of arithmetic offsets (stride 0 included), one
  // GEMM each; offsets here are arithmetic, broadcast, or arbitrary (repeats, descending).
  // Leading dimensions as matmul.cpp passes them: >= the stored columns, = the columns for
  // a one-row operand.
  SKIP_UNLESS_CUBLAS();
  auto& st = cublas_standin::stats();
  std::mt19937_64 rng(33);
  std::uniform_int_distribution<int> u(0, 1 << 20);
  auto dim = [&] {
    const int r = u(rng) % 6;
    return int64_t(r < 2 ? 1 : r < 3 ? 2 : 1 + u(rng) % 9);
  };
  int failures = 0;
  for (int it = 0; it < 2000 && failures < 10; ++it) {
    const int64_t M = dim(), N = dim(), K = dim(), batch = 1 + u(rng) % 4;
    const bool ta = u(rng) % 2, tb = u(rng) % 2;
    const int64_t ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    const int64_t lda = ra == 1 ? ca : ca + u(rng) % 3, ldb = rb == 1 ? cb : cb + u(rng) % 3;
    const int64_t span_a = (ra - 1) * lda + ca + 2, span_b = (rb - 1) * ldb + cb + 2;  // + a NaN gap
    const int mode = u(rng) % 3;  // 0 arithmetic, 1 B broadcast, 2 arbitrary slots
    std::vector<int64_t> offa(batch), offb(batch);
    for (int64_t i = 0; i < batch; ++i) {
      offa[i] = (mode == 2 ? u(rng) % 4 : i) * span_a;
      offb[i] = (mode == 1 ? 0 : mode == 2 ? u(rng) % 4 : i) * span_b;
    }
    std::vector<double> A(4 * span_a, nan_value<double>()), B(4 * span_b, nan_value<double>());
    std::uniform_real_distribution<double> val(-1, 1);
    for (int64_t slot = 0; slot < 4; ++slot) {
      for (int64_t i = 0; i < ra; ++i)
        for (int64_t j = 0; j < ca; ++j) A[slot * span_a + i * lda + j] = val(rng);
      for (int64_t i = 0; i < rb; ++i)
        for (int64_t j = 0; j < cb; ++j) B[slot * span_b + i * ldb + j] = val(rng);
    }
    std::vector<double> C(batch * M * N, nan_value<double>());
    try {
      matmul_float<double>(ta, tb, M, N, K, A.data(), lda, offa.data(), B.data(), ldb, offb.data(), C.data(), batch);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "matmul M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << ": "
                    << e.what();
      ++failures;
      continue;
    }
    double worst = 0;
    for (int64_t z = 0; z < batch; ++z)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          long double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += static_cast<long double>(ta ? A[offa[z] + k * lda + i] : A[offa[z] + i * lda + k]) *
                   (tb ? B[offb[z] + j * ldb + k] : B[offb[z] + k * ldb + j]);
          worst = std::max(worst, rel_err(C[(z * M + i) * N + j], acc));
        }
    if (!(worst <= 1e-12)) {
      ADD_FAILURE() << "matmul M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb
                    << " batch=" << batch << " mode=" << mode << ": error " << worst;
      ++failures;
    }
  }
  EXPECT_EQ(st.rejected, 0) << "last rejected argument: " << st.last_rejection;
}

TEST(CudaHostCublas, ConvFloat64AllPaths) {
  SKIP_UNLESS_CUBLAS();
  run_conv_suite<double, GemmRoute::Cublas>(1e-12, 41);
  EXPECT_EQ(cublas_standin::stats().rejected, 0) << cublas_standin::stats().last_rejection;
}
TEST(CudaHostCublas, ConvFloat32AllPaths) {
  SKIP_UNLESS_CUBLAS();
  run_conv_suite<float, GemmRoute::Cublas>(5e-5, 42);
  EXPECT_EQ(cublas_standin::stats().rejected, 0) << cublas_standin::stats().last_rejection;
}
TEST(CudaHostCublas, ConvRandomShapesFloat64) {
  SKIP_UNLESS_CUBLAS();
  run_random_convs<GemmRoute::Cublas>(250, 43);
  EXPECT_EQ(cublas_standin::stats().rejected, 0) << cublas_standin::stats().last_rejection;
}

#else

TEST(CudaHostCublas, NotBuilt) {
  GTEST_SKIP() << "built without cublas_v2.h: gemm.cu's cuBLAS path is not compiled, so not tested";
}

#endif  // DLCORE_HAVE_CUBLAS

}  // namespace dlcore::cuda_impl::host_tests
