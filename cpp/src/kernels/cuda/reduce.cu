// CUDA reductions over a contiguous (outer, R, inner) buffer (see kernels/reduce.h):
// sum, and min/max with first-occurrence indices.
//
// A reduction is an Op (SumOp, MinMaxOp): a value type V, an identity, make(x, r)
// for element r of the reduced dim, an associative and commutative combine, and a
// store. Two kernels:
//   reduce_rows (inner == 1): a group of G threads (one warp, or a 256-thread
//     block) per row, each thread striding over the row (coalesced), then a tree
//     reduction with warp shuffles (+ shared memory across the warps of a block);
//   reduce_cols (inner > 1, or rows of a few elements): one thread per output,
//     looping over R; neighbouring threads read neighbouring elements of `inner`.
// Both can split R into `chunks` pieces and write one partial per piece, laid out
// as (outer, chunks, inner), into a Workspace; the driver then reduces the
// partials (with the element indices they carry) the same way, with R = chunks.
// So a full sum of 1e8 values runs on every SM, and few long columns too.
//
// Sums accumulate in double for float32 and float64 (pieces are also capped so that a
// thread adds at most 256 (rows) or 1024 (columns) values in sequence before the tree
// or the next pass), int64 in uint64 so overflow wraps around.
// Min/max: NaN wins over numbers, among NaNs and among equal values the smaller
// index wins; this makes combine a selection under a total order, hence exactly
// the CPU's sequential "first NaN, else first extreme" in any combining order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda_backend.h"
#include "dlcore/dtype.h"
#include "dlcore/errors.h"

namespace dlcore::cuda_impl {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ inline float shfl_down(float v, int o) { return __shfl_down_sync(kFullMask, v, o); }
__device__ inline double shfl_down(double v, int o) { return __shfl_down_sync(kFullMask, v, o); }
__device__ inline int64_t shfl_down(int64_t v, int o) {
  return static_cast<int64_t>(__shfl_down_sync(kFullMask, static_cast<long long>(v), o));
}
__device__ inline uint64_t shfl_down(uint64_t v, int o) {
  return static_cast<uint64_t>(__shfl_down_sync(kFullMask, static_cast<unsigned long long>(v), o));
}

template <class T_>
struct SumOp {
  using T = T_;
  // int64: a wrapping sum; float32 accumulates in double (as the CPU does across blocks),
  // so sums that cancel to near zero still match the CPU to 1e-4.
  using V = std::conditional_t<std::is_same_v<T, int64_t>, uint64_t, std::conditional_t<std::is_same_v<T, float>, double, T>>;
  static constexpr bool kIndexed = false;
  __device__ V identity() const { return V(0); }
  __device__ V make(T x, int64_t) const { return static_cast<V>(x); }
  __device__ V combine(V a, V b) const { return a + b; }
  __device__ V shfl(V v, int o) const { return shfl_down(v, o); }
  __device__ void store(V v, T* out, int64_t*, int64_t pos) const { out[pos] = static_cast<T>(v); }
};

template <class T_>
struct MinMaxOp {
  using T = T_;
  struct V {
    T v;
    int64_t i;  // index along R; -1 marks the identity (no element)
  };
  static constexpr bool kIndexed = true;
  bool is_max;
  __device__ V identity() const { return V{T(0), -1}; }
  __device__ V make(T x, int64_t i) const { return V{x, i}; }
  // The preferred of a and b: NaN first, then the extreme value, then the smaller index.
  __device__ V combine(V a, V b) const {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    if constexpr (std::is_floating_point_v<T>) {
      const bool an = a.v != a.v, bn = b.v != b.v;
      if (an != bn) return an ? a : b;
      if (an) return a.i < b.i ? a : b;
    }
    if (a.v == b.v) return a.i < b.i ? a : b;  // also -0.0 vs 0.0: the first one, as the CPU
    return (is_max ? a.v > b.v : a.v < b.v) ? a : b;
  }
  __device__ V shfl(V v, int o) const { return V{shfl_down(v.v, o), shfl_down(v.i, o)}; }
  __device__ void store(V v, T* out, int64_t* idx, int64_t pos) const {
    out[pos] = v.v;
    if (idx) idx[pos] = v.i;
  }
};

// Reduces v over a group of G consecutive threads (G == 32, or G == blockDim.x);
// the result is valid in the group's first thread. All threads of the group must call it.
template <int G, class Op>
__device__ typename Op::V group_reduce(typename Op::V v, const Op& op) {
  static_assert(G == 32 || G == kThreads, "a group is a warp or a block");
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op.combine(v, op.shfl(v, o));
  if constexpr (G > 32) {
    __shared__ typename Op::V warp_part[G / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    if (warp == 0) {
      v = lane < G / 32 ? warp_part[lane] : op.identity();
#pragma unroll
      for (int o = G / 64; o > 0; o >>= 1) v = op.combine(v, op.shfl(v, o));
    }
    __syncthreads();  // warp_part is written again for the next row
  }
  return v;
}

__device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Element index r of piece `r` of a row: r itself, or the index carried by a partial.
__device__ inline int64_t elem_index(const int64_t* xi, int64_t pos, int64_t r) { return xi ? xi[pos] : r; }

// inner == 1: item (row, c) reduces x[row, c*len : min(R, (c+1)*len)] into out[row*chunks + c].
template <int G, class Op>
__global__ void reduce_rows(const typename Op::T* x, const int64_t* xi, int64_t rows, int64_t R, int64_t chunks,
                            int64_t len, typename Op::T* out, int64_t* oidx, Op op) {
  using T = typename Op::T;
  using V = typename Op::V;
  constexpr int kGroups = kThreads / G;
  const int t = threadIdx.x % G;
  const int64_t items = rows * chunks;
  // The loop bound is uniform over each group (a whole block when G == kThreads).
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / G; item < items;
       item += static_cast<int64_t>(gridDim.x) * kGroups) {
    const int64_t row = item / chunks, c = item - row * chunks;
    const int64_t end = min64(R, (c + 1) * len), base = row * R;
    V v = op.identity();
    int64_t r = c * len + t;
    for (; r + 3 * G < end; r += 4 * G) {  // four independent loads in flight
      const T a0 = x[base + r], a1 = x[base + r + G], a2 = x[base + r + 2 * G], a3 = x[base + r + 3 * G];
      v = op.combine(v, op.make(a0, elem_index(xi, base + r, r)));
      v = op.combine(v, op.make(a1, elem_index(xi, base + r + G, r + G)));
      v = op.combine(v, op.make(a2, elem_index(xi, base + r + 2 * G, r + 2 * G)));
      v = op.combine(v, op.make(a3, elem_index(xi, base + r + 3 * G, r + 3 * G)));
    }
    for (; r < end; r += G) v = op.combine(v, op.make(x[base + r], elem_index(xi, base + r, r)));
    v = group_reduce<G>(v, op);
    if (t == 0) op.store(v, out, oidx, item);
  }
}

// Any inner: item (o, c, i) reduces x[o, c*len : min(R, (c+1)*len), i] into out[(o*chunks + c)*inner + i].
template <class Op>
__global__ void reduce_cols(const typename Op::T* x, const int64_t* xi, int64_t outer, int64_t R, int64_t inner,
                            int64_t chunks, int64_t len, typename Op::T* out, int64_t* oidx, Op op) {
  using T = typename Op::T;
  using V = typename Op::V;
  const int64_t items = outer * chunks * inner;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; item < items; item += step) {
    const int64_t i = item % inner, rest = item / inner;
    const int64_t c = rest % chunks, o = rest / chunks;
    const int64_t end = min64(R, (c + 1) * len), base = o * R * inner + i;
    V v = op.identity();
    int64_t r = c * len;
    for (; r + 3 < end; r += 4) {
      const int64_t p = base + r * inner;
      const T a0 = x[p], a1 = x[p + inner], a2 = x[p + 2 * inner], a3 = x[p + 3 * inner];
      v = op.combine(v, op.make(a0, elem_index(xi, p, r)));
      v = op.combine(v, op.make(a1, elem_index(xi, p + inner, r + 1)));
      v = op.combine(v, op.make(a2, elem_index(xi, p + 2 * inner, r + 2)));
      v = op.combine(v, op.make(a3, elem_index(xi, p + 3 * inner, r + 3)));
    }
    for (; r < end; ++r) v = op.combine(v, op.make(x[base + r * inner], elem_index(xi, base + r * inner, r)));
    op.store(v, out, oidx, item);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// out[o, i] (and oidx) = the reduction of x[o, :, i]; xi (may be null) holds the
// element index of each x value when x are partials of an earlier pass. R >= 1.
template <class Op>
void reduce(const typename Op::T* x, const int64_t* xi, typename Op::T* out, int64_t* oidx, int64_t outer,
            int64_t R, int64_t inner, const Op& op) {
  using T = typename Op::T;
  const int64_t sms = num_sms();
  const bool rows = inner == 1 && R > 16;
  int64_t chunks = 1;
  if (rows && R > 1024) {
    // A block per row; split rows of > 8192 values when there are fewer rows than
    // resident blocks (8 blocks of 256 threads per SM).
    const int64_t target = sms * 8;
    if (outer < target) chunks = std::min(ceil_div(target, outer), ceil_div(R, 8192));
    chunks = std::max(chunks, ceil_div(R, 65536));  // <= 256 values per thread before the tree
  } else if (!rows && R >= 128) {
    // A thread per output; split columns (into pieces of >= 64 values) when there
    // are fewer outputs than resident threads (2048 per SM).
    const int64_t target = sms * 2048;
    if (outer * inner < target) chunks = std::min(ceil_div(target, outer * inner), ceil_div(R, 64));
    chunks = std::max(chunks, ceil_div(R, 1024));  // <= 1024 values summed in sequence per thread
  }
  const int64_t len = ceil_div(R, chunks);
  chunks = ceil_div(R, len);  // no empty piece

  // Pass output: the final buffers, or partials (outer, chunks, inner) in a workspace.
  const int64_t nout = outer * chunks * inner;
  const bool partial = chunks > 1;
  const size_t vbytes = (static_cast<size_t>(nout) * sizeof(T) + 255) / 256 * 256;  // indices stay aligned
  const size_t ibytes = partial && Op::kIndexed ? static_cast<size_t>(nout) * sizeof(int64_t) : 0;
  Workspace ws(partial ? vbytes + ibytes : 0);
  T* pout = partial ? ws.as<T>() : out;
  int64_t* pidx = partial ? (Op::kIndexed ? reinterpret_cast<int64_t*>(ws.as<char>() + vbytes) : nullptr) : oidx;

  if (rows && R <= 1024) {
    reduce_rows<32><<<grid_for(outer * 32, kThreads), kThreads, 0, current_stream()>>>(x, xi, outer, R, chunks, len,
                                                                                       pout, pidx, op);
  } else if (rows) {
    reduce_rows<kThreads><<<grid_for(outer * chunks * kThreads, kThreads), kThreads, 0, current_stream()>>>(
        x, xi, outer, R, chunks, len, pout, pidx, op);
  } else {
    reduce_cols<<<grid_for(nout, kThreads), kThreads, 0, current_stream()>>>(x, xi, outer, R, inner, chunks, len,
                                                                             pout, pidx, op);
  }
  DLCORE_CUDA_LAUNCH_CHECK();
  // Reduce the partials; the workspace is released after this call has queued its
  // kernels, which is safe in stream order (see Workspace).
  if (partial) reduce(pout, pidx, out, oidx, outer, chunks, inner, op);
}

}  // namespace

void CudaBackend::sum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner) {
  DLCORE_DISPATCH_NUMERIC(dt, "sum", [&] {
    using T = scalar_t;
    const int64_t n = outer * inner;
    if (n == 0) return;
    if (R == 0) {  // empty sums are 0 (all-zero bytes for every T)
      DLCORE_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(n) * sizeof(T), current_stream()));
      return;
    }
    reduce(static_cast<const T*>(x), nullptr, static_cast<T*>(out), nullptr, outer, R, inner, SumOp<T>{});
  });
}

void CudaBackend::minmax(DType dt, const void* x, void* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
                         bool is_max) {
  const char* name = is_max ? "max" : "min";
  DLCORE_DISPATCH_NUMERIC(dt, name, [&] {
    using T = scalar_t;
    if (outer * inner == 0) return;
    DLCORE_CHECK(R >= 1, ValueError, name, ": cannot reduce over an empty dim");
    reduce(static_cast<const T*>(x), nullptr, static_cast<T*>(out), idx, outer, R, inner, MinMaxOp<T>{is_max});
  });
}

}  // namespace dlcore::cuda_impl
