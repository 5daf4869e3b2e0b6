// 2-D convolution on the GPU (forward, input gradient, weight gradient) lowered onto the
// GEMM helpers of gemm.cu (cuBLAS, or the fallback kernel).
//
// Note [CUDA conv]
//   Per group g (Cg = C/groups input channels, Kg = K/groups outputs, CgRS = Cg*R*S rows of
//   the column matrix). Work goes in items of whole images (as many as keep the scratch
//   under a budget, 256 MiB by default; DLCORE_CUDA_CONV_WORKSPACE_BYTES, read once, changes
//   it so that tests can force the chunked paths) or, when one image alone is over the
//   budget, bands of output rows of one image. Every item's scratch index fits 32 bits,
//   so the index kernels divide with multiply-shift (FastDiv) instead of 64-bit division.
//   * Forward: col = im2col(x) in image-major layout [b][c*R*S + r*S + s][pixel]; per group
//     one strided-batched GEMM over the images, y_n,g (Kg x PQ) = W_g (Kg x CgRS) @ col_n,g,
//     writes y in NCHW directly (no transposed output buffer, no permute kernel); the bias
//     is one broadcast-add kernel over y at the end. 1x1 stride-1 unpadded convs use x
//     itself as the column matrix (no im2col).
//   * Input gradient: dcol_n,g = W_g^T @ dy_n,g (strided-batched GEMM, dy read in place),
//     then col2im in gather form: one thread per input element sums its R*S taps in a fixed
//     order (no atomics, deterministic) and overwrites dx. 1x1 stride-1 unpadded convs
//     write dx from the GEMM directly.
//   * Weight gradient: dW_g = sum over images and pixels of dy_g @ col_g^T. When that GEMM has
//     few output tiles (small K*CgRS: LeNet, small ConvNets), one long GEMM would keep only a
//     handful of blocks busy in long serial loops, so it is split: with several images per
//     item, one partial dW per image (strided-batched GEMM over the images with dy read in
//     place and col image-major) and one fixed-order reduction kernel; with one image (or a
//     band), segments of the pixel dimension the same way. Otherwise (many tiles) col is
//     pixel-major [c*R*S + r*S + s][b*PQ + pixel], dy is permuted to [K][b*PQ + pixel] (in
//     place for one image) and one GEMM per item accumulates into dW (beta 0, then 1).
//   * Groups: each GEMM is batched over the longer of (images, groups) and looped over the
//     other (gemm_2d).
//   Everything runs on current_stream(); no host synchronisation. The driver logic is a
//   template over an Ops type (DeviceOps here), and the element functions are host-callable,
//   so the whole lowering can be checked against a direct convolution without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "cuda_backend.h"
#include "dlcore/dtype.h"
#include "dlcore/errors.h"
#include "dlcore/kernels/conv.h"

namespace dlcore::cuda_impl {
namespace {

using kernels::Conv2dShape;

// ---------------------------------------------------------------------------
// Index helpers
// ---------------------------------------------------------------------------

// n / d for 0 <= n < 2^31 and 1 <= d < 2^31 as a multiply-high and a shift (round-up
// reciprocal m = floor(2^32 (2^s - d) / d) + 1 with s = ceil(log2 d)).
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t div) : d(static_cast<uint32_t>(div < 1 ? 1 : div)) {
    s = 0;
    while ((uint64_t(1) << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - d)) / d + 1);
  }
  __host__ __device__ uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(n, m);
#else
    const uint32_t hi = static_cast<uint32_t>((static_cast<uint64_t>(n) * m) >> 32);
#endif
    return (hi + n) >> s;
  }
  // q = n / d, returns n % d.
  __host__ __device__ uint32_t divmod(uint32_t n, uint32_t& q) const {
    q = div(n);
    return n - q * d;
  }
};

// Geometry of one image (all extents of one image fit 31 bits; checked by make_plan).
struct Geom {
  int C, H, W, R, S, Q;
  int sh, sw, ph, pw, dh, dw;
};

Geom geom_of(const Conv2dShape& s) {
  Geom g{};
  g.C = static_cast<int>(s.C);
  g.H = static_cast<int>(s.H);
  g.W = static_cast<int>(s.W);
  g.R = static_cast<int>(s.R);
  g.S = static_cast<int>(s.S);
  g.Q = static_cast<int>(s.Q);
  g.sh = static_cast<int>(s.stride_h);
  g.sw = static_cast<int>(s.stride_w);
  g.ph = static_cast<int>(s.pad_h);
  g.pw = static_cast<int>(s.pad_w);
  g.dh = static_cast<int>(s.dil_h);
  g.dw = static_cast<int>(s.dil_w);
  return g;
}

// im2col of `nb` images (x points at the first) for output rows [p0, p0 + L/Q):
//   image-major: col[((b * CRS) + crs) * L + j]
//   pixel-major: col[((crs * nb) + b) * L + j]
// with crs = c*R*S + r*S + s and j = (p - p0)*Q + q; zero where the tap is in the padding.
struct Im2colArgs {
  Geom g;
  int p0;
  uint32_t total;  // nb * CRS * L
  FastDiv fL, fMid, fRS, fS, fQ;  // fMid: CRS (image-major) or nb (pixel-major)
};

template <class T, bool PIXEL_MAJOR>
__host__ __device__ inline T im2col_at(const T* __restrict__ x, const Im2colArgs& a, uint32_t idx) {
  uint32_t t, b, crs, c, rs, r, s, pl, q;
  const uint32_t j = a.fL.divmod(idx, t);
  if (PIXEL_MAJOR) {
    b = a.fMid.divmod(t, crs);
  } else {
    crs = a.fMid.divmod(t, b);
  }
  rs = a.fRS.divmod(crs, c);
  s = a.fS.divmod(rs, r);
  q = a.fQ.divmod(j, pl);
  const Geom& g = a.g;
  const int h = (a.p0 + static_cast<int>(pl)) * g.sh - g.ph + static_cast<int>(r) * g.dh;
  const int w = static_cast<int>(q) * g.sw - g.pw + static_cast<int>(s) * g.dw;
  if (h < 0 || h >= g.H || w < 0 || w >= g.W) return T(0);
  return x[(static_cast<int64_t>(b) * g.C + c) * (static_cast<int64_t>(g.H) * g.W) + static_cast<int64_t>(h) * g.W +
           w];
}

// col2im, gather form: element idx of the input rows [h0, h0 + hcount) of `nb` images
// (dx points at the first image) sums the dcol entries (image-major, output rows
// [p0, p1), L = (p1 - p0) * Q pixels per row of dcol) of its R*S taps, r then s ascending.
struct Col2imArgs {
  Geom g;
  int p0, p1, h0, L;
  uint32_t total;  // nb * C * hcount * W
  bool accumulate;
  FastDiv fW, fHc, fC, fsh, fsw;
};

// Returns the sum; `dst` gets the element's offset in dx.
template <class T>
__host__ __device__ inline T col2im_at(const T* __restrict__ dcol, const Col2imArgs& a, uint32_t idx, int64_t& dst) {
  uint32_t t, t2, b, c;
  const uint32_t w = a.fW.divmod(idx, t);
  const uint32_t hl = a.fHc.divmod(t, t2);
  c = a.fC.divmod(t2, b);
  const Geom& g = a.g;
  const int h = a.h0 + static_cast<int>(hl);
  dst = ((static_cast<int64_t>(b) * g.C + c) * g.H + h) * g.W + w;
  const int64_t RS = static_cast<int64_t>(g.R) * g.S;
  const T* base = dcol + (static_cast<int64_t>(b) * g.C + c) * RS * a.L;  // row (c, r=0, s=0) of image b
  T sum = T(0);
  for (int r = 0; r < g.R; ++r) {
    const int hh = h + g.ph - r * g.dh;  // = p * sh for the output row p this tap reads
    if (hh < 0) break;                   // decreasing in r
    uint32_t p;
    if (a.fsh.divmod(static_cast<uint32_t>(hh), p) != 0) continue;
    if (static_cast<int>(p) >= a.p1) continue;
    if (static_cast<int>(p) < a.p0) break;  // p decreasing in r
    const T* row = base + static_cast<int64_t>(r) * g.S * a.L + static_cast<int64_t>(static_cast<int>(p) - a.p0) * g.Q;
    for (int s = 0; s < g.S; ++s) {
      const int ww = static_cast<int>(w) + g.pw - s * g.dw;
      if (ww < 0) break;  // decreasing in s
      uint32_t q;
      if (a.fsw.divmod(static_cast<uint32_t>(ww), q) != 0) continue;
      if (static_cast<int>(q) >= g.Q) continue;
      sum += row[static_cast<int64_t>(s) * a.L + q];
    }
  }
  return sum;
}

// dy of `nb` images (K x PQ each) to [K][nb * PQ]: dst[(k * nb + b) * PQ + j] = dy[(b * K + k) * PQ + j].
struct PermuteArgs {
  int K;
  uint32_t total;  // nb * K * PQ
  FastDiv fPQ, fNb;
};

__host__ __device__ inline int64_t permute_src(const PermuteArgs& a, uint32_t idx) {
  uint32_t t, k;
  const uint32_t j = a.fPQ.divmod(idx, t);  // t = k * nb + b
  const uint32_t b = a.fNb.divmod(t, k);
  return (static_cast<int64_t>(b) * a.K + k) * a.fPQ.d + j;
}

// y[(b * K + k) * PQ + j] += bias[k] over `total` = nb * K * PQ elements of whole images.
struct BiasArgs {
  uint32_t total;
  FastDiv fPQ, fK;
};

__host__ __device__ inline uint32_t bias_channel(const BiasArgs& a, uint32_t idx) {
  uint32_t n;
  return a.fK.divmod(a.fPQ.div(idx), n);  // idx / PQ = n * K + k
}

// ---------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------

constexpr int kThreads = 256;

// Grid-stride loop over a 32-bit range (total < 2^31, so idx + stride cannot wrap).
#define DLCORE_FOR_U32(idx, total)                                                              \
  for (uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x, idx##_step = gridDim.x * blockDim.x; \
       idx < (total); idx += idx##_step)

template <class T, bool PIXEL_MAJOR>
__global__ void __launch_bounds__(kThreads) im2col_kernel(const T* __restrict__ x, T* __restrict__ col,
                                                          Im2colArgs a) {
  DLCORE_FOR_U32(idx, a.total) col[idx] = im2col_at<T, PIXEL_MAJOR>(x, a, idx);
}

template <class T>
__global__ void __launch_bounds__(kThreads) col2im_kernel(const T* __restrict__ dcol, T* __restrict__ dx,
                                                          Col2imArgs a) {
  DLCORE_FOR_U32(idx, a.total) {
    int64_t off;
    const T v = col2im_at<T>(dcol, a, idx, off);
    dx[off] = a.accumulate ? dx[off] + v : v;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) permute_kernel(const T* __restrict__ dy, T* __restrict__ dst,
                                                           PermuteArgs a) {
  DLCORE_FOR_U32(idx, a.total) dst[idx] = dy[permute_src(a, idx)];
}

template <class T>
__global__ void __launch_bounds__(kThreads) bias_kernel(T* __restrict__ y, const T* __restrict__ bias, BiasArgs a) {
  DLCORE_FOR_U32(idx, a.total) y[idx] += bias[bias_channel(a, idx)];
}

// dw[i] = (accumulate ? dw[i] : 0) + sum_{t < parts} part[t * n + i], in a fixed order
// (deterministic): a block is 32 outputs (threadIdx.x, coalesced) x kPartSlices slices of
// the parts (threadIdx.y, slice y sums t = y, y + kPartSlices, ...); the slices are then
// added in ascending y through shared memory. Many loads in flight per output, so few
// outputs with many parts (LeNet's first layer: 150 weights x 512 images) stay fast.
constexpr int kPartSlices = 16;
template <class T>
__global__ void __launch_bounds__(32 * kPartSlices) reduce_parts_kernel(const T* __restrict__ part,
                                                                         T* __restrict__ dw, int64_t n,
                                                                         int64_t parts, bool accumulate) {
  __shared__ T slice_sum[kPartSlices][32];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  T acc = T(0);
  if (i < n)
    for (int64_t t = threadIdx.y; t < parts; t += kPartSlices) acc += part[t * n + i];
  slice_sum[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && i < n) {
    T total = accumulate ? dw[i] : T(0);
    for (int y = 0; y < kPartSlices; ++y) total += slice_sum[y][threadIdx.x];
    dw[i] = total;
  }
}

// ---------------------------------------------------------------------------
// Argument builders (shared by the device ops and host checks)
// ---------------------------------------------------------------------------

Im2colArgs im2col_args(const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, bool pixel_major) {
  Im2colArgs a{};
  a.g = geom_of(s);
  a.p0 = static_cast<int>(p0);
  const int64_t L = (p1 - p0) * s.Q, CRS = s.C * s.R * s.S;
  a.total = static_cast<uint32_t>(nb * CRS * L);
  a.fL = FastDiv(L);
  a.fMid = FastDiv(pixel_major ? nb : CRS);
  a.fRS = FastDiv(s.R * s.S);
  a.fS = FastDiv(s.S);
  a.fQ = FastDiv(s.Q);
  return a;
}

Col2imArgs col2im_args(const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, int64_t h0, int64_t h1,
                       bool accumulate) {
  Col2imArgs a{};
  a.g = geom_of(s);
  a.p0 = static_cast<int>(p0);
  a.p1 = static_cast<int>(p1);
  a.h0 = static_cast<int>(h0);
  a.L = static_cast<int>((p1 - p0) * s.Q);
  a.total = static_cast<uint32_t>(nb * s.C * (h1 - h0) * s.W);
  a.accumulate = accumulate;
  a.fW = FastDiv(s.W);
  a.fHc = FastDiv(h1 - h0);
  a.fC = FastDiv(s.C);
  a.fsh = FastDiv(s.stride_h);
  a.fsw = FastDiv(s.stride_w);
  return a;
}

PermuteArgs permute_args(int64_t nb, int64_t K, int64_t PQ) {
  PermuteArgs a{};
  a.K = static_cast<int>(K);
  a.total = static_cast<uint32_t>(nb * K * PQ);
  a.fPQ = FastDiv(PQ);
  a.fNb = FastDiv(nb);
  return a;
}

// ---------------------------------------------------------------------------
// Device ops
// ---------------------------------------------------------------------------

template <class T>
struct DeviceOps {
  // Scratch of n elements from the caching allocator (none for n == 0).
  class Buffer {
   public:
    explicit Buffer(int64_t n) {
      if (n > 0) ws_.emplace(static_cast<size_t>(n) * sizeof(T));
    }
    T* get() const { return ws_ ? ws_->template as<T>() : nullptr; }

   private:
    std::optional<Workspace> ws_;
  };

  static int sms() { return num_sms(); }

  static void im2col(const T* x, T* col, const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, bool pixel_major) {
    const Im2colArgs a = im2col_args(s, nb, p0, p1, pixel_major);
    if (a.total == 0) return;
    if (pixel_major)
      im2col_kernel<T, true><<<grid_for(a.total, kThreads), kThreads, 0, current_stream()>>>(x, col, a);
    else
      im2col_kernel<T, false><<<grid_for(a.total, kThreads), kThreads, 0, current_stream()>>>(x, col, a);
    DLCORE_CUDA_LAUNCH_CHECK();
  }

  static void col2im(const T* dcol, T* dx, const Conv2dShape& s, int64_t nb, int64_t p0, int64_t p1, int64_t h0,
                     int64_t h1, bool accumulate) {
    const Col2imArgs a = col2im_args(s, nb, p0, p1, h0, h1, accumulate);
    if (a.total == 0) return;
    col2im_kernel<T><<<grid_for(a.total, kThreads), kThreads, 0, current_stream()>>>(dcol, dx, a);
    DLCORE_CUDA_LAUNCH_CHECK();
  }

  static void permute(const T* dy, T* dst, int64_t nb, int64_t K, int64_t PQ) {
    const PermuteArgs a = permute_args(nb, K, PQ);
    if (a.total == 0) return;
    permute_kernel<T><<<grid_for(a.total, kThreads), kThreads, 0, current_stream()>>>(dy, dst, a);
    DLCORE_CUDA_LAUNCH_CHECK();
  }

  // In pieces of whole images with 32-bit indices (K*PQ < 2^31 is checked by the caller).
  static void add_bias(T* y, const T* bias, int64_t N, int64_t K, int64_t PQ) {
    const int64_t per_image = K * PQ;
    if (N <= 0 || per_image <= 0) return;
    const int64_t step = std::max<int64_t>(1, (int64_t(INT_MAX) - 1) / per_image);
    for (int64_t n0 = 0; n0 < N; n0 += step) {
      BiasArgs a{};
      a.total = static_cast<uint32_t>(std::min(step, N - n0) * per_image);
      a.fPQ = FastDiv(PQ);
      a.fK = FastDiv(K);
      bias_kernel<T><<<grid_for(a.total, kThreads), kThreads, 0, current_stream()>>>(y + n0 * per_image, bias, a);
      DLCORE_CUDA_LAUNCH_CHECK();
    }
  }

  static void reduce_parts(const T* part, T* dw, int64_t n, int64_t parts, bool accumulate) {
    if (n <= 0) return;
    const int64_t blocks = (n + 31) / 32;
    DLCORE_CHECK(blocks < (int64_t(1) << 31), RuntimeError, "conv2d (CUDA): weight of ", n, " elements is too large");
    reduce_parts_kernel<T><<<static_cast<unsigned>(blocks), dim3(32, kPartSlices), 0, current_stream()>>>(
        part, dw, n, parts, accumulate);
    DLCORE_CUDA_LAUNCH_CHECK();
  }

  static void zero(T* p, int64_t n) {
    if (n <= 0) return;
    DLCORE_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(T), current_stream()));
  }

  static void gemm_sb(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                      int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C, int64_t ldc, int64_t sc,
                      int64_t batch) {
    gemm_strided_batched<T>(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
  }
};

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

int64_t workspace_budget() {
  static const int64_t budget = [] {
    int64_t b = int64_t(256) << 20;
    if (const char* e = std::getenv("DLCORE_CUDA_CONV_WORKSPACE_BYTES")) {
      char* end = nullptr;
      const long long v = std::strtoll(e, &end, 10);
      if (end != e && v > 0) b = v;
    }
    return b;
  }();
  return budget;
}

constexpr int64_t kMax32 = INT_MAX;  // per-item index ranges stay below 2^31

// Work items: `nb` whole images at a time (rows == P), or one image in bands of `rows`
// output rows when one image's scratch is over the budget.
struct Plan {
  int64_t nb, rows;
};

// scratch_px: scratch elements per output pixel of one image; extent: the largest other
// per-image index range a kernel of this pass walks (C*H*W, K*P*Q).
Plan make_plan(const Conv2dShape& s, int64_t scratch_px, int64_t extent, size_t elem, int64_t budget) {
  const int64_t PQ = s.P * s.Q;
  DLCORE_CHECK(extent < kMax32 && s.C * s.R * s.S < kMax32 && s.K * PQ < kMax32, RuntimeError,
               "conv2d (CUDA): one image is too large (", extent, " elements; at most ", kMax32, ")");
  const int64_t budget_elems = std::max<int64_t>(1, budget / static_cast<int64_t>(elem));
  const int64_t per_image = scratch_px * PQ;
  if (per_image <= budget_elems && per_image < kMax32) {
    int64_t nb = std::min<int64_t>(s.N, budget_elems / std::max<int64_t>(per_image, 1));
    nb = std::min<int64_t>(nb, (kMax32 - 1) / std::max<int64_t>({per_image, extent, 1}));
    return {std::max<int64_t>(nb, 1), s.P};
  }
  const int64_t per_row = scratch_px * s.Q;
  DLCORE_CHECK(per_row < kMax32, RuntimeError, "conv2d (CUDA): one output row needs ", per_row,
               " scratch elements (at most ", kMax32, ")");
  int64_t rows = std::min<int64_t>(budget_elems / per_row, (kMax32 - 1) / per_row);
  rows = std::min<int64_t>(std::max<int64_t>(rows, 1), s.P);
  return {1, rows};
}

struct Item {
  int64_t n0, nb, p0, p1;
};

template <class F>
void for_items(const Conv2dShape& s, const Plan& pl, F&& f) {
  if (pl.rows >= s.P) {
    for (int64_t n0 = 0; n0 < s.N; n0 += pl.nb) f(Item{n0, std::min(pl.nb, s.N - n0), 0, s.P});
    return;
  }
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t p0 = 0; p0 < s.P; p0 += pl.rows) f(Item{n, 1, p0, std::min(s.P, p0 + pl.rows)});
}

bool is_direct_1x1(const Conv2dShape& s) {
  return s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

// n1 x n2 products: operand X of product (i1, i2) at X + i1*sx1 + i2*sx2. Batched over the
// longer index (one strided-batched GEMM each), looped over the other.
template <class T, class Ops>
void gemm_2d(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, int64_t sa1,
             int64_t sa2, const T* B, int64_t ldb, int64_t sb1, int64_t sb2, T beta, T* C, int64_t ldc, int64_t sc1,
             int64_t sc2, int64_t n1, int64_t n2) {
  if (n1 <= 0 || n2 <= 0) return;
  if (n1 >= n2) {
    for (int64_t i = 0; i < n2; ++i)
      Ops::gemm_sb(ta, tb, M, N, K, alpha, A + i * sa2, lda, sa1, B + i * sb2, ldb, sb1, beta, C + i * sc2, ldc, sc1,
                   n1);
  } else {
    for (int64_t i = 0; i < n1; ++i)
      Ops::gemm_sb(ta, tb, M, N, K, alpha, A + i * sa1, lda, sa2, B + i * sb1, ldb, sb2, beta, C + i * sc1, ldc, sc2,
                   n2);
  }
}

// ---------------------------------------------------------------------------
// The three passes
// ---------------------------------------------------------------------------

template <class T, class Ops>
void conv_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s, int64_t budget) {
  if (s.N <= 0 || s.K <= 0 || s.P <= 0 || s.Q <= 0) return;
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, RS = s.R * s.S, CgRS = Cg * RS, CRS = s.C * RS;
  const int64_t PQ = s.P * s.Q, HW = s.H * s.W;
  if (is_direct_1x1(s)) {
    // x_n is the column matrix (C x HW, HW == PQ): y_n,g = W_g (Kg x Cg) @ x_n,g.
    gemm_2d<T, Ops>(false, false, Kg, PQ, Cg, T(1), w, Cg, 0, Kg * Cg, x, HW, s.C * HW, Cg * HW, T(0), y, PQ,
                    s.K * PQ, Kg * PQ, s.N, G);
  } else {
    const Plan pl = make_plan(s, CRS, std::max(s.C * HW, s.K * PQ), sizeof(T), budget);
    typename Ops::Buffer col(pl.nb * CRS * pl.rows * s.Q);
    for_items(s, pl, [&](const Item& it) {
      const int64_t L = (it.p1 - it.p0) * s.Q;
      Ops::im2col(x + it.n0 * s.C * HW, col.get(), s, it.nb, it.p0, it.p1, false);
      // y_n,g (Kg x L, ld PQ) = W_g (Kg x CgRS) @ col_n,g (CgRS x L)
      gemm_2d<T, Ops>(false, false, Kg, L, CgRS, T(1), w, CgRS, 0, Kg * CgRS, col.get(), L, CRS * L, CgRS * L, T(0),
                      y + it.n0 * s.K * PQ + it.p0 * s.Q, PQ, s.K * PQ, Kg * PQ, it.nb, G);
    });
  }
  if (bias != nullptr) {
    DLCORE_CHECK(s.K * PQ < kMax32, RuntimeError, "conv2d (CUDA): one output image is too large (", s.K * PQ,
                 " elements; at most ", kMax32, ")");
    Ops::add_bias(y, bias, s.N, s.K, PQ);
  }
}

template <class T, class Ops>
void conv_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s, int64_t budget) {
  const int64_t HW = s.H * s.W;
  if (s.N <= 0 || s.C <= 0 || HW <= 0) return;
  if (s.K <= 0 || s.P <= 0 || s.Q <= 0) {
    Ops::zero(dx, s.N * s.C * HW);
    return;
  }
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, RS = s.R * s.S, CgRS = Cg * RS, CRS = s.C * RS;
  const int64_t PQ = s.P * s.Q;
  if (is_direct_1x1(s)) {
    // dx_n,g (Cg x HW) = W_g^T (Cg x Kg) @ dy_n,g (Kg x PQ), PQ == HW.
    gemm_2d<T, Ops>(true, false, Cg, HW, Kg, T(1), w, Cg, 0, Kg * Cg, dy, PQ, s.K * PQ, Kg * PQ, T(0), dx, HW,
                    s.C * HW, Cg * HW, s.N, G);
    return;
  }
  const Plan pl = make_plan(s, CRS, std::max(s.C * HW, s.K * PQ), sizeof(T), budget);
  typename Ops::Buffer dcol(pl.nb * CRS * pl.rows * s.Q);
  const bool banded = pl.rows < s.P;
  for_items(s, pl, [&](const Item& it) {
    const int64_t L = (it.p1 - it.p0) * s.Q;
    // dcol_n,g (CgRS x L) = W_g^T (CgRS x Kg) @ dy_n,g (Kg x L, ld PQ)
    gemm_2d<T, Ops>(true, false, CgRS, L, Kg, T(1), w, CgRS, 0, Kg * CgRS, dy + it.n0 * s.K * PQ + it.p0 * s.Q, PQ,
                    s.K * PQ, Kg * PQ, T(0), dcol.get(), L, CRS * L, CgRS * L, it.nb, G);
    T* dxn = dx + it.n0 * s.C * HW;
    if (!banded) {
      Ops::col2im(dcol.get(), dxn, s, it.nb, 0, s.P, 0, s.H, false);
      return;
    }
    // A band of output rows reaches input rows [hlo, hhi); bands overlap there, so the
    // image is zeroed first and the bands add up in order.
    if (it.p0 == 0) Ops::zero(dxn, s.C * HW);
    const int64_t hlo = std::max<int64_t>(0, it.p0 * s.stride_h - s.pad_h);
    const int64_t hhi = std::min<int64_t>(s.H, (it.p1 - 1) * s.stride_h - s.pad_h + (s.R - 1) * s.dil_h + 1);
    if (hhi > hlo) Ops::col2im(dcol.get(), dxn, s, 1, it.p0, it.p1, hlo, hhi, true);
  });
}

// Split weight-gradient GEMM (Note [CUDA conv]). The GEMM has about tiles = ceil(Kg/64) *
// ceil(CgRS/64) * G output tiles; splitting its inner dimension into `parts` pieces gives
// the GPU tiles * parts blocks, aimed at ~2 per SM. Partial buffers stay under kPartBytes.
constexpr int64_t kPartBytes = int64_t(64) << 20;
constexpr int64_t kMinSegment = 256;  // shortest inner segment of a split along the pixels

int64_t wanted_parts(int64_t Kg, int64_t CgRS, int64_t G, int sms) {
  const int64_t tiles = ((Kg + 63) / 64) * ((CgRS + 63) / 64) * G;
  return 2 * static_cast<int64_t>(sms) / std::max<int64_t>(tiles, 1);
}

int64_t max_parts_for(int64_t wsize, size_t elem) {
  return kPartBytes / static_cast<int64_t>(elem) / std::max<int64_t>(wsize, 1);
}

// Segments of a split along a contiguous inner dimension of length `inner`; 1 = no split.
int64_t split_count(int64_t Kg, int64_t CgRS, int64_t G, int64_t inner, int64_t wsize, int sms, size_t elem) {
  int64_t parts = std::min(wanted_parts(Kg, CgRS, G, sms), inner / kMinSegment);
  parts = std::min(parts, max_parts_for(wsize, elem));
  return parts >= 2 ? parts : 1;
}

// Weight gradient, per item of nb images (or one image's band of output rows):
//   * per-image split (nb > 1, few output tiles): col = im2col image-major, one partial
//     dW per image from dy in place (strided-batched GEMM over the images), then the
//     fixed-order reduction: no permute of dy;
//   * otherwise col = im2col pixel-major and dy permuted to [K][nb*PQ] (in place for one
//     image): one GEMM with the inner dimension nb*PQ, split along it into segments when
//     it has few output tiles and is long.
template <class T, class Ops>
void conv_backward_weight(const T* x, const T* dy, T* dw, const Conv2dShape& s, int64_t budget) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, RS = s.R * s.S, CgRS = Cg * RS, CRS = s.C * RS;
  const int64_t wsize = s.K * CgRS;
  if (wsize <= 0) return;
  if (s.N <= 0 || s.P <= 0 || s.Q <= 0) {
    Ops::zero(dw, wsize);
    return;
  }
  const int64_t PQ = s.P * s.Q, HW = s.H * s.W;
  const Plan pl = make_plan(s, CRS + s.K, std::max(s.C * HW, s.K * PQ), sizeof(T), budget);
  const int64_t max_inner = pl.nb * pl.rows * s.Q;
  // per-image partials only when each is no larger than that image's dy (else the
  // permute-and-split path moves less memory, e.g. 64->64 channels at 16x16)
  const bool per_image = pl.nb > 1 && wanted_parts(Kg, CgRS, G, Ops::sms()) >= 2 &&
                         pl.nb <= max_parts_for(wsize, sizeof(T)) && wsize <= s.K * PQ;
  typename Ops::Buffer col(CRS * max_inner);
  typename Ops::Buffer dyp(pl.nb > 1 && !per_image ? s.K * max_inner : 0);
  const int64_t max_parts =
      per_image ? pl.nb : split_count(Kg, CgRS, G, max_inner, wsize, Ops::sms(), sizeof(T));
  typename Ops::Buffer part(max_parts > 1 ? max_parts * wsize : 0);
  bool first = true;
  for_items(s, pl, [&](const Item& it) {
    const T* dyn = dy + it.n0 * s.K * PQ;
    if (per_image && it.nb > 1) {
      Ops::im2col(x + it.n0 * s.C * HW, col.get(), s, it.nb, 0, s.P, false);
      // part_n,g (Kg x CgRS) = dy_n,g (Kg x PQ) @ col_n,g^T (col_n,g: CgRS x PQ, row-major)
      gemm_2d<T, Ops>(false, true, Kg, CgRS, PQ, T(1), dyn, PQ, s.K * PQ, Kg * PQ, col.get(), PQ, CRS * PQ,
                      CgRS * PQ, T(0), part.get(), CgRS, wsize, Kg * CgRS, it.nb, G);
      Ops::reduce_parts(part.get(), dw, wsize, it.nb, !first);
      first = false;
      return;
    }
    const int64_t inner = it.nb * (it.p1 - it.p0) * s.Q;
    Ops::im2col(x + it.n0 * s.C * HW, col.get(), s, it.nb, it.p0, it.p1, true);
    const T* A;
    int64_t lda;
    if (it.nb == 1) {
      A = dyn + it.p0 * s.Q;  // K x inner, rows PQ apart
      lda = PQ;
    } else {
      Ops::permute(dyn, dyp.get(), it.nb, s.K, PQ);
      A = dyp.get();
      lda = inner;
    }
    // dW_g (Kg x CgRS) = dy_g (Kg x inner) @ col_g^T (col_g: CgRS x inner, row-major)
    const int64_t parts = std::min(max_parts, split_count(Kg, CgRS, G, inner, wsize, Ops::sms(), sizeof(T)));
    if (parts <= 1) {
      Ops::gemm_sb(false, true, Kg, CgRS, inner, T(1), A, lda, Kg * lda, col.get(), inner, CgRS * inner,
                   first ? T(0) : T(1), dw, CgRS, Kg * CgRS, G);
    } else {
      // Segments of `seg` inner indices; partial t of group g at part + t*wsize + g*Kg*CgRS.
      const int64_t seg = (inner + parts - 1) / parts, full = inner / seg, rem = inner - full * seg;
      gemm_2d<T, Ops>(false, true, Kg, CgRS, seg, T(1), A, lda, seg, Kg * lda, col.get(), inner, seg, CgRS * inner,
                      T(0), part.get(), CgRS, wsize, Kg * CgRS, full, G);
      if (rem > 0)
        Ops::gemm_sb(false, true, Kg, CgRS, rem, T(1), A + full * seg, lda, Kg * lda, col.get() + full * seg, inner,
                     CgRS * inner, T(0), part.get() + full * wsize, CgRS, Kg * CgRS, G);
      Ops::reduce_parts(part.get(), dw, wsize, full + (rem > 0 ? 1 : 0), !first);
    }
    first = false;
  });
}

template <class F>
void dispatch_float(DType dt, const char* name, F&& f) {
  if (dt == DType::Float32) return f(float{});
  if (dt == DType::Float64) return f(double{});
  throw TypeError(str(name, ": expected a float32 or float64 tensor, got ", dtype_name(dt)));
}

}  // namespace

// ---------------------------------------------------------------------------
// CudaBackend
// ---------------------------------------------------------------------------

void CudaBackend::conv2d_forward(DType dt, const void* x, const void* w, const void* bias, void* y,
                                 const kernels::Conv2dShape& s) {
  dispatch_float(dt, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv_forward<T, DeviceOps<T>>(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias),
                                  static_cast<T*>(y), s, workspace_budget());
  });
}

void CudaBackend::conv2d_backward_input(DType dt, const void* dy, const void* w, void* dx,
                                        const kernels::Conv2dShape& s) {
  dispatch_float(dt, "conv2d_input_grad", [&](auto tag) {
    using T = decltype(tag);
    conv_backward_input<T, DeviceOps<T>>(static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx),
                                         s, workspace_budget());
  });
}

void CudaBackend::conv2d_backward_weight(DType dt, const void* x, const void* dy, void* dw,
                                         const kernels::Conv2dShape& s) {
  dispatch_float(dt, "conv2d_weight_grad", [&](auto tag) {
    using T = decltype(tag);
    conv_backward_weight<T, DeviceOps<T>>(static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<T*>(dw),
                                          s, workspace_budget());
  });
}

}  // namespace dlcore::cuda_impl
