// CUDA kernels for pooling, softmax, cross-entropy, multi-margin and the fused
// SGD / Adam updates: the CUDA side of kernels/nn.h and kernels/optim.h, with the
// exact semantics of the CPU kernels (cpu/nn.cpp, cpu/optim.cpp).
//
// Approach
//   Pooling forward and pool_gather: one thread per output element (grid-stride,
//   64-bit indices), scanning its window in the CPU's (r, c) order so that ties
//   and NaNs resolve the same way.
//   Pooling backward in gather form, deterministic and without atomics: one thread
//   per input element walks the outputs whose window can cover it, in increasing
//   output order (the order in which the CPU scatters), and sums their
//   contributions; every dx element is written, so no separate zero fill. A max
//   window holding no input element (possible only with dilation) reports idx 0;
//   when the host finds such windows, the thread of a plane's element 0 scans all
//   outputs of its plane instead.
//   Row-wise ops (softmax with inner == 1, cross-entropy forward/backward,
//   multi-margin): one warp per row (blockDim (32, 8)) up to kWarpMaxC classes,
//   one 512-thread block per row above; passes over the row with warp-shuffle /
//   shared-memory reductions. Softmax with inner > 1: one thread per
//   (outer, inner) column looping over C (coalesced over inner).
//   SGD / Adam: elementwise grid-stride kernels; scalar constants are derived on
//   the host exactly as the CPU derives them and passed in T.
//   Accurate expf/exp/logf/log throughout (no fast-math intrinsics). All launches
//   go to current_stream(); nothing synchronises.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda_backend.h"
#include "dlcore/dtype.h"
#include "dlcore/errors.h"
#include "dlcore/kernels/nn.h"

namespace dlcore::cuda_impl {

namespace {

using kernels::AvgPoolWindow;
using kernels::Pool2dShape;
using kernels::avg_pool_window;
using kernels::max_pool_window;

constexpr int kThreads = 256;        // elementwise / per-output kernels
constexpr int kRowsPerBlock = 8;     // warp-per-row kernels: blockDim (32, kRowsPerBlock)
constexpr int kRowBlockThreads = 512;  // block-per-row kernels
constexpr int64_t kWarpMaxC = 1024;  // rows up to this length use one warp

template <class T> T* typed(void* p) { return static_cast<T*>(p); }
template <class T> const T* typed(const void* p) { return static_cast<const T*>(p); }

// Grid for `rows` rows handled `per_block` at a time (grid-stride beyond the cap).
inline unsigned row_grid(int64_t rows, int64_t per_block) {
  int64_t blocks = (rows + per_block - 1) / per_block;
  if (blocks < 1) blocks = 1;
  const int64_t cap = 65535LL * 16;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

__device__ __forceinline__ int64_t global_tid() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t global_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

template <class T> __device__ __forceinline__ T neg_inf() { return static_cast<T>(-INFINITY); }

__device__ __forceinline__ float dexp(float v) { return expf(v); }
__device__ __forceinline__ double dexp(double v) { return exp(v); }
__device__ __forceinline__ float dlog(float v) { return logf(v); }
__device__ __forceinline__ double dlog(double v) { return log(v); }

// ---------------------------------------------------------------------------
// Reductions within a row group (a warp, or a whole block).

struct SumOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
// The CPU's max (max_of / std::max from -inf): a NaN never replaces the accumulator.
struct MaxOp {
  template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};

// Butterfly over the warp, then lane 0's value broadcast so that every lane holds
// the bitwise same result (row-uniform branches on it stay uniform).
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return __shfl_sync(0xffffffffu, v, 0);
}

// Whole-block reduction (blockDim.x a multiple of 32, blockDim.y == 1); every
// thread gets the result. Partials combine in warp order (deterministic).
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* smem) {
  v = warp_reduce(v, op);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  __syncthreads();  // readers of a previous reduction are done with smem
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T r = smem[0];
  for (int w = 1; w < nwarps; ++w) r = op(r, smem[w]);
  return r;
}

// Row mapping: kBlock -> one block per row; else one warp (threadIdx.y) per row.
template <bool kBlock> struct RowGroup {
  __device__ static int64_t first_row() {
    return kBlock ? static_cast<int64_t>(blockIdx.x)
                  : static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  }
  __device__ static int64_t row_step() {
    return kBlock ? static_cast<int64_t>(gridDim.x) : static_cast<int64_t>(gridDim.x) * blockDim.y;
  }
  __device__ static int lane() { return threadIdx.x; }
  __device__ static int width() { return blockDim.x; }
  template <class T, class Op> __device__ static T reduce(T v, Op op, T* smem) {
    if constexpr (kBlock) return block_reduce(v, op, smem);
    else return warp_reduce(v, op);
  }
};

// ---------------------------------------------------------------------------
// Pooling

template <class T>
__global__ void max_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx,
                                    Pool2dShape s, int64_t total) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t pl = k / plane_out, o = k - pl * plane_out;
    const int64_t p = o / s.Q, q = o - p * s.Q;
    T best;
    idx[k] = max_pool_window(x + pl * plane_in, s, p, q, best);
    y[k] = best;
  }
}

// Smallest o >= 0 with o * stride >= num (num may be negative): the first output
// whose window can reach a given input row/column.
__device__ __forceinline__ int64_t first_out(int64_t num, int64_t stride) {
  return num <= 0 ? 0 : (num + stride - 1) / stride;
}

// dx[h, w] = sum of dy[o] over the outputs o (in increasing order) with idx[o] == h*W+w.
template <class T>
__global__ void max_pool_bwd_kernel(const T* __restrict__ dy, const int64_t* __restrict__ idx, T* __restrict__ dx,
                                    Pool2dShape s, int64_t total, bool has_empty_windows) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t pl = k / plane_in, e = k - pl * plane_in;
    const int64_t h = e / s.W, w = e - h * s.W;
    const T* dyp = dy + pl * plane_out;
    const int64_t* ip = idx + pl * plane_out;
    T acc = T(0);
    if (e == 0 && has_empty_windows) {
      // empty windows report idx 0: element 0 takes every output pointing at it
      for (int64_t o = 0; o < plane_out; ++o)
        if (ip[o] == 0) acc += dyp[o];
    } else {
      // outputs p with p*sh - ph + r*dh == h for some r in [0, R)
      const int64_t p0 = first_out(h + s.pad_h - (s.R - 1) * s.dil_h, s.stride_h);
      int64_t p1 = (h + s.pad_h) / s.stride_h;
      if (p1 > s.P - 1) p1 = s.P - 1;
      const int64_t q0 = first_out(w + s.pad_w - (s.S - 1) * s.dil_w, s.stride_w);
      int64_t q1 = (w + s.pad_w) / s.stride_w;
      if (q1 > s.Q - 1) q1 = s.Q - 1;
      for (int64_t p = p0; p <= p1; ++p) {
        if ((h + s.pad_h - p * s.stride_h) % s.dil_h != 0) continue;
        for (int64_t q = q0; q <= q1; ++q) {
          if ((w + s.pad_w - q * s.stride_w) % s.dil_w != 0) continue;
          const int64_t o = p * s.Q + q;
          if (ip[o] == e) acc += dyp[o];
        }
      }
    }
    dx[k] = acc;
  }
}

template <class T>
__global__ void pool_gather_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ y,
                                   Pool2dShape s, int64_t total) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t pl = k / plane_out;
    y[k] = x[pl * plane_in + idx[k]];
  }
}

template <class T>
__global__ void avg_pool_fwd_kernel(const T* __restrict__ x, T* __restrict__ y, Pool2dShape s, int64_t total,
                                    bool cip) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t pl = k / plane_out, o = k - pl * plane_out;
    const int64_t p = o / s.Q, q = o - p * s.Q;
    const T* xp = x + pl * plane_in;
    const AvgPoolWindow win = avg_pool_window(s, p, q, cip);
    T acc = T(0);
    for (int64_t h = win.h0; h < win.h1; ++h)
      for (int64_t c = win.w0; c < win.w1; ++c) acc += xp[h * s.W + c];
    y[k] = acc / static_cast<T>(win.divisor);
  }
}

// dx[h, w] = sum over the outputs (increasing order) whose clipped window holds
// (h, w) of dy / divisor: the CPU's scatter, gathered.
template <class T>
__global__ void avg_pool_bwd_kernel(const T* __restrict__ dy, T* __restrict__ dx, Pool2dShape s, int64_t total,
                                    bool cip) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t pl = k / plane_in, e = k - pl * plane_in;
    const int64_t h = e / s.W, w = e - h * s.W;
    const T* dyp = dy + pl * plane_out;
    // window rows [p*sh - ph, p*sh - ph + R) hold h
    const int64_t p0 = first_out(h + s.pad_h - s.R + 1, s.stride_h);
    int64_t p1 = (h + s.pad_h) / s.stride_h;
    if (p1 > s.P - 1) p1 = s.P - 1;
    const int64_t q0 = first_out(w + s.pad_w - s.S + 1, s.stride_w);
    int64_t q1 = (w + s.pad_w) / s.stride_w;
    if (q1 > s.Q - 1) q1 = s.Q - 1;
    T acc = T(0);
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q) {
        const AvgPoolWindow win = avg_pool_window(s, p, q, cip);
        if (h < win.h0 || h >= win.h1 || w < win.w0 || w >= win.w1) continue;
        acc += dyp[p * s.Q + q] / static_cast<T>(win.divisor);
      }
    dx[k] = acc;
  }
}

// Whether some max-pool window holds no input element (then it reports idx 0).
bool pool_has_empty_windows(const Pool2dShape& s) {
  auto empty_along = [](int64_t n_out, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t in) {
    for (int64_t o = 0; o < n_out; ++o) {
      bool any = false;
      for (int64_t r = 0; r < k && !any; ++r) {
        const int64_t v = o * stride - pad + r * dil;
        any = v >= 0 && v < in;
      }
      if (!any) return true;
    }
    return false;
  };
  if (s.P <= 0 || s.Q <= 0) return false;
  return empty_along(s.P, s.R, s.stride_h, s.pad_h, s.dil_h, s.H) ||
         empty_along(s.Q, s.S, s.stride_w, s.pad_w, s.dil_w, s.W);
}

// ---------------------------------------------------------------------------
// Softmax

// inner == 1: one group per row of C contiguous values.
template <class T, bool kBlock>
__global__ void softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t C,
                                    bool log_out) {
  using G = RowGroup<kBlock>;
  __shared__ T smem[32];
  const int lane = G::lane(), width = G::width();
  for (int64_t row = G::first_row(); row < rows; row += G::row_step()) {
    const T* xr = x + row * C;
    T* yr = y + row * C;
    T m = neg_inf<T>();
    for (int64_t c = lane; c < C; c += width) m = MaxOp()(m, xr[c]);
    m = G::reduce(m, MaxOp(), smem);
    if (m == neg_inf<T>()) m = T(0);  // all -inf: avoid inf - inf
    T sum = T(0);
    for (int64_t c = lane; c < C; c += width) {
      const T ev = dexp(xr[c] - m);
      if (!log_out) yr[c] = ev;
      sum += ev;
    }
    sum = G::reduce(sum, SumOp(), smem);
    if (log_out) {
      const T lse = m + dlog(sum);
      for (int64_t c = lane; c < C; c += width) yr[c] = xr[c] - lse;
    } else {
      const T inv = T(1) / sum;
      for (int64_t c = lane; c < C; c += width) yr[c] *= inv;  // this thread's own writes above
    }
  }
}

// inner > 1: one thread per (outer, inner) column, C values inner apart.
template <class T>
__global__ void softmax_cols_kernel(const T* x, T* y, int64_t outer, int64_t C,
                                    int64_t inner, bool log_out) {
  const int64_t total = outer * inner;
  for (int64_t k = global_tid(); k < total; k += global_stride()) {
    const int64_t o = k / inner, i = k - o * inner;
    const T* xp = x + o * C * inner + i;
    T* yp = y + o * C * inner + i;
    T m = neg_inf<T>();
    for (int64_t c = 0; c < C; ++c) m = MaxOp()(m, xp[c * inner]);
    if (m == neg_inf<T>()) m = T(0);
    T sum = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const T ev = dexp(xp[c * inner] - m);
      if (!log_out) yp[c * inner] = ev;
      sum += ev;
    }
    if (log_out) {
      const T lse = m + dlog(sum);
      for (int64_t c = 0; c < C; ++c) yp[c * inner] = xp[c * inner] - lse;
    } else {
      const T inv = T(1) / sum;
      for (int64_t c = 0; c < C; ++c) yp[c * inner] *= inv;
    }
  }
}

// ---------------------------------------------------------------------------
// Losses

//   lse_i = log-sum-exp of row i (-inf when the row's max is -inf)
//   loss_i = (1-e) (lse_i - x[i, t_i]) + (e/C) sum_j (lse_i - x[i, j])   (second term only when e != 0)
template <class T, bool kBlock>
__global__ void cross_entropy_fwd_kernel(const T* __restrict__ x, const int64_t* __restrict__ target,
                                         T* __restrict__ loss, T* __restrict__ lse_out, int64_t N, int64_t C,
                                         T e) {
  using G = RowGroup<kBlock>;
  __shared__ T smem[32];
  const int lane = G::lane(), width = G::width();
  for (int64_t row = G::first_row(); row < N; row += G::row_step()) {
    const T* xr = x + row * C;
    T m = neg_inf<T>();
    for (int64_t c = lane; c < C; c += width) m = MaxOp()(m, xr[c]);
    m = G::reduce(m, MaxOp(), smem);
    T lse = m;
    if (!(m == neg_inf<T>())) {  // row-uniform branch
      T sum = T(0);
      for (int64_t c = lane; c < C; c += width) sum += dexp(xr[c] - m);
      sum = G::reduce(sum, SumOp(), smem);
      lse = m + dlog(sum);
    }
    T l = (T(1) - e) * (lse - xr[target[row]]);
    if (e != T(0)) {
      T sm = T(0);
      for (int64_t c = lane; c < C; c += width) sm += lse - xr[c];
      sm = G::reduce(sm, SumOp(), smem);
      l += e / static_cast<T>(C) * sm;
    }
    if (lane == 0) {
      lse_out[row] = lse;
      loss[row] = l;
    }
  }
}

// dx[i, j] = g_i (exp(x[i, j] - lse_i) - e/C), then dx[i, t_i] -= g_i (1-e).
template <class T, bool kBlock>
__global__ void cross_entropy_bwd_kernel(const T* x, const int64_t* target, const T* g, const T* lse, T* dx,
                                         int64_t N, int64_t C, T e, T off) {
  using G = RowGroup<kBlock>;
  const int lane = G::lane(), width = G::width();
  for (int64_t row = G::first_row(); row < N; row += G::row_step()) {
    const T* xr = x + row * C;
    T* dr = dx + row * C;
    const T gi = g[row], li = lse[row];
    const int64_t t = target[row];
    for (int64_t c = lane; c < C; c += width) {
      T v = gi * (dexp(xr[c] - li) - off);
      if (c == t) v -= gi * (T(1) - e);
      dr[c] = v;
    }
  }
}

//   loss_i = sum_{j != t_i, v > 0} v^p,  v = s[i, j] - s[i, t_i] + margin;  / C when mean_over_classes
template <class T, bool kBlock>
__global__ void multi_margin_kernel(const T* __restrict__ s, const int64_t* __restrict__ target,
                                    T* __restrict__ loss, int64_t N, int64_t C, int p, T margin, bool mean) {
  using G = RowGroup<kBlock>;
  __shared__ T smem[32];
  const int lane = G::lane(), width = G::width();
  for (int64_t row = G::first_row(); row < N; row += G::row_step()) {
    const T* sr = s + row * C;
    const int64_t t = target[row];
    const T sy = sr[t];
    T l = T(0);
    for (int64_t c = lane; c < C; c += width) {
      if (c == t) continue;
      const T v = sr[c] - sy + margin;
      if (v > T(0)) l += p == 1 ? v : v * v;
    }
    l = G::reduce(l, SumOp(), smem);
    if (lane == 0) loss[row] = mean ? l / static_cast<T>(C) : l;
  }
}

// ---------------------------------------------------------------------------
// Optimisers (kernels/optim.h), arithmetic in T as on the CPU.

template <class T>
__global__ void sgd_kernel(T* __restrict__ p, const T* __restrict__ grad, T* __restrict__ buf, int64_t n, T lr,
                           T mom, T damp, T wd, bool use_wd, bool use_mom, bool nesterov, bool first) {
  for (int64_t i = global_tid(); i < n; i += global_stride()) {
    T g = grad[i];
    if (use_wd) g += wd * p[i];
    if (use_mom) {
      const T b = first ? g : mom * buf[i] + damp * g;
      buf[i] = b;
      g = nesterov ? g + mom * b : b;
    }
    p[i] -= lr * g;
  }
}

template <class T>
__global__ void adam_kernel(T* __restrict__ p, const T* __restrict__ grad, T* __restrict__ m, T* __restrict__ v,
                            int64_t n, T step, T inv_sqrt_bc2, T b1, T b2, T eps, T wd, T decay, T ob1, T ob2,
                            bool use_wd, bool decoupled) {
  for (int64_t i = global_tid(); i < n; i += global_stride()) {
    T g = grad[i];
    T pi = p[i];
    if (use_wd) {
      if (decoupled) pi *= decay;
      else g += wd * pi;
    }
    const T mi = b1 * m[i] + ob1 * g;
    const T vi = b2 * v[i] + ob2 * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Backend methods

void CudaBackend::max_pool2d_forward(DType dt, const void* x, void* y, int64_t* idx, const kernels::Pool2dShape& s) {
  DLCORE_DISPATCH_FLOAT(dt, "max_pool2d", [&] {
    const int64_t total = s.planes * s.P * s.Q;
    if (total <= 0) return;
    max_pool_fwd_kernel<scalar_t><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        typed<scalar_t>(x), typed<scalar_t>(y), idx, s, total);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::max_pool2d_backward(DType dt, const void* dy, const int64_t* idx, void* dx,
                                      const kernels::Pool2dShape& s) {
  DLCORE_DISPATCH_FLOAT(dt, "max_pool2d_backward", [&] {
    const int64_t total = s.planes * s.H * s.W;  // every dx element is written (zero when nothing routes to it)
    if (total <= 0) return;
    const bool empty = pool_has_empty_windows(s);
    max_pool_bwd_kernel<scalar_t><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        typed<scalar_t>(dy), idx, typed<scalar_t>(dx), s, total, empty);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::pool_gather(DType dt, const void* x, const int64_t* idx, void* y, const kernels::Pool2dShape& s) {
  DLCORE_DISPATCH_FLOAT(dt, "max_pool2d_gather", [&] {
    const int64_t total = s.planes * s.P * s.Q;
    if (total <= 0) return;
    pool_gather_kernel<scalar_t><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        typed<scalar_t>(x), idx, typed<scalar_t>(y), s, total);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::avg_pool2d_forward(DType dt, const void* x, void* y, const kernels::Pool2dShape& s,
                                     bool count_include_pad) {
  DLCORE_DISPATCH_FLOAT(dt, "avg_pool2d", [&] {
    const int64_t total = s.planes * s.P * s.Q;
    if (total <= 0) return;
    avg_pool_fwd_kernel<scalar_t><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        typed<scalar_t>(x), typed<scalar_t>(y), s, total, count_include_pad);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::avg_pool2d_backward(DType dt, const void* dy, void* dx, const kernels::Pool2dShape& s,
                                      bool count_include_pad) {
  DLCORE_DISPATCH_FLOAT(dt, "avg_pool2d_backward", [&] {
    const int64_t total = s.planes * s.H * s.W;  // every dx element is written
    if (total <= 0) return;
    avg_pool_bwd_kernel<scalar_t><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        typed<scalar_t>(dy), typed<scalar_t>(dx), s, total, count_include_pad);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::softmax(DType dt, const void* x, void* y, int64_t outer, int64_t C, int64_t inner, bool log) {
  DLCORE_DISPATCH_FLOAT(dt, log ? "log_softmax" : "softmax", [&] {
    if (outer <= 0 || C <= 0 || inner <= 0) return;
    const scalar_t* xs = typed<scalar_t>(x);
    scalar_t* ys = typed<scalar_t>(y);
    if (inner == 1) {
      if (C <= kWarpMaxC)
        softmax_rows_kernel<scalar_t, false><<<row_grid(outer, kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                                               current_stream()>>>(xs, ys, outer, C, log);
      else
        softmax_rows_kernel<scalar_t, true><<<row_grid(outer, 1), kRowBlockThreads, 0, current_stream()>>>(
            xs, ys, outer, C, log);
    } else {
      softmax_cols_kernel<scalar_t><<<grid_for(outer * inner, kThreads), kThreads, 0, current_stream()>>>(
          xs, ys, outer, C, inner, log);
    }
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::cross_entropy_forward(DType dt, const void* x, const int64_t* target, void* loss, void* lse,
                                        int64_t N, int64_t C, double smoothing) {
  DLCORE_DISPATCH_FLOAT(dt, "cross_entropy", [&] {
    if (N <= 0 || C <= 0) return;
    const scalar_t e = static_cast<scalar_t>(smoothing);
    const scalar_t* xs = typed<scalar_t>(x);
    scalar_t* ls = typed<scalar_t>(loss);
    scalar_t* lses = typed<scalar_t>(lse);
    if (C <= kWarpMaxC)
      cross_entropy_fwd_kernel<scalar_t, false><<<row_grid(N, kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                                                  current_stream()>>>(xs, target, ls, lses, N, C, e);
    else
      cross_entropy_fwd_kernel<scalar_t, true><<<row_grid(N, 1), kRowBlockThreads, 0, current_stream()>>>(
          xs, target, ls, lses, N, C, e);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::cross_entropy_backward(DType dt, const void* x, const int64_t* target, const void* g,
                                         const void* lse, void* dx, int64_t N, int64_t C, double smoothing) {
  DLCORE_DISPATCH_FLOAT(dt, "cross_entropy_backward", [&] {
    if (N <= 0 || C <= 0) return;
    const scalar_t e = static_cast<scalar_t>(smoothing);
    const scalar_t off = e / static_cast<scalar_t>(C);
    const scalar_t* xs = typed<scalar_t>(x);
    const scalar_t* gs = typed<scalar_t>(g);
    const scalar_t* lses = typed<scalar_t>(lse);
    scalar_t* dxs = typed<scalar_t>(dx);
    if (C <= kWarpMaxC)
      cross_entropy_bwd_kernel<scalar_t, false><<<row_grid(N, kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                                                  current_stream()>>>(xs, target, gs, lses, dxs, N, C, e, off);
    else
      cross_entropy_bwd_kernel<scalar_t, true><<<row_grid(N, 1), kRowBlockThreads, 0, current_stream()>>>(
          xs, target, gs, lses, dxs, N, C, e, off);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::multi_margin_forward(DType dt, const void* s, const int64_t* target, void* loss, int64_t N,
                                       int64_t C, int p, double margin, bool mean_over_classes) {
  DLCORE_DISPATCH_FLOAT(dt, "multi_margin", [&] {
    if (N <= 0 || C <= 0) return;
    const scalar_t m = static_cast<scalar_t>(margin);
    const scalar_t* ss = typed<scalar_t>(s);
    scalar_t* ls = typed<scalar_t>(loss);
    if (C <= kWarpMaxC)
      multi_margin_kernel<scalar_t, false><<<row_grid(N, kRowsPerBlock), dim3(32, kRowsPerBlock), 0,
                                             current_stream()>>>(ss, target, ls, N, C, p, m, mean_over_classes);
    else
      multi_margin_kernel<scalar_t, true><<<row_grid(N, 1), kRowBlockThreads, 0, current_stream()>>>(
          ss, target, ls, N, C, p, m, mean_over_classes);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::sgd_step(DType dt, void* p, const void* grad, void* buf, int64_t n, double lr, double momentum,
                           double dampening, bool nesterov, double weight_decay, bool first) {
  DLCORE_DISPATCH_FLOAT(dt, "sgd_step", [&] {
    if (n <= 0) return;
    using T = scalar_t;
    const T lr_ = static_cast<T>(lr), mom = static_cast<T>(momentum), damp = static_cast<T>(1.0 - dampening),
            wd = static_cast<T>(weight_decay);
    sgd_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        typed<T>(p), typed<T>(grad), typed<T>(buf), n, lr_, mom, damp, wd, weight_decay != 0.0, momentum != 0.0,
        nesterov, first);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

void CudaBackend::adam_step(DType dt, void* p, const void* grad, void* m, void* v, int64_t n, int64_t t, double lr,
                            double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
  DLCORE_DISPATCH_FLOAT(dt, "adam_step", [&] {
    if (n <= 0) return;
    using T = scalar_t;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    const T step = static_cast<T>(lr / bc1), inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), e = static_cast<T>(eps),
            wd = static_cast<T>(weight_decay), decay = static_cast<T>(1.0 - lr * weight_decay);
    const T ob1 = static_cast<T>(1.0 - beta1), ob2 = static_cast<T>(1.0 - beta2);
    adam_kernel<T><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(
        typed<T>(p), typed<T>(grad), typed<T>(m), typed<T>(v), n, step, inv_sqrt_bc2, b1, b2, e, wd, decay, ob1,
        ob2, weight_decay != 0.0, decoupled);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace dlcore::cuda_impl
