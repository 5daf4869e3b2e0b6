// CUDA elementwise kernels: binary, unary, where, copy (dtype conversion), fill,
// index_select and index_add.
//
// Every strided op is one grid-stride kernel (ew_kernel) over the n elements of a
// shape of at most kMaxDims dims (already broadcast and coalesced by the op
// layer). The linear index is turned into one element offset per operand
// (Strided::offsets) and a small "body" functor does the work at those offsets.
// When every operand is contiguous the kernel is instantiated with Contig = true
// and uses the linear index as the offset (the fast path). binary_flat is the
// strided kernel on one dim, with stride 0 for a scalar operand (its single value
// is then read on the device); one dim costs a multiply, no division.
//
// The (op, dtype) -> functor mapping mirrors kernels/cpu/cpu_backend.cpp,
// including which pairs throw TypeError: int64 add/sub/mul/neg/abs wrap around
// (computed in uint64), int64 pow is exponentiation by squaring, div is for float
// types only, maximum/minimum propagate NaN (the first NaN operand), bool has the
// comparisons only, and float -> int64 of NaN or out-of-range values gives INT64_MIN.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "cuda_backend.h"
#include "dlcore/kernels/functors.h"
#include "dlcore/dtype.h"
#include "dlcore/errors.h"

namespace dlcore {

namespace cuda_impl {
namespace {

constexpr int kThreads = 256;

// ---------------- strided index arithmetic ----------------

// Shape and per-operand strides (in elements), passed to the kernel by value.
template <int NA>
struct Strided {
  int nd;
  int64_t shape[kMaxDims];
  int64_t st[NA][kMaxDims];

  // Element offset of each operand for the row-major linear index i < numel.
  __device__ void offsets(int64_t i, int64_t (&off)[NA]) const {
#pragma unroll
    for (int k = 0; k < NA; ++k) off[k] = 0;
    for (int d = nd - 1; d > 0; --d) {
      const int64_t q = i / shape[d], r = i - q * shape[d];
#pragma unroll
      for (int k = 0; k < NA; ++k) off[k] += r * st[k][d];
      i = q;
    }
    if (nd > 0) {  // the outermost index is what is left (i < numel): no division
#pragma unroll
      for (int k = 0; k < NA; ++k) off[k] += i * st[k][0];
    }
  }
};

int64_t numel(const Dims& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// Row-major contiguous (dims of size 1 may have any stride); true for 0-d.
bool is_contiguous(const Dims& shape, const int64_t* st) {
  int64_t expect = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] != 1 && st[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

template <int NA, bool Contig, class Body>
__global__ void ew_kernel(int64_t n, Strided<NA> s, Body body) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    int64_t off[NA];
    if constexpr (Contig) {
#pragma unroll
      for (int k = 0; k < NA; ++k) off[k] = i;
    } else {
      s.offsets(i, off);
    }
    body(off);
  }
}

// Runs body(offsets) for every element of `shape`; strides[k] is operand k's.
template <int NA, class Body>
void launch(const char* what, const Dims& shape, const std::array<const int64_t*, NA>& strides, const Body& body) {
  DLCORE_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), RuntimeError, what, ": the CUDA backend supports at most ",
               kMaxDims, " dims after coalescing, got ", shape.size(), " (shape ", shape_str(shape), ")");
  const int64_t n = numel(shape);
  if (n == 0) return;
  Strided<NA> s{};
  s.nd = static_cast<int>(shape.size());
  bool contig = true;
  for (int k = 0; k < NA; ++k) contig = contig && is_contiguous(shape, strides[k]);
  for (int d = 0; d < s.nd; ++d) {
    s.shape[d] = shape[d];
    for (int k = 0; k < NA; ++k) s.st[k][d] = strides[k][d];
  }
  if (contig)
    ew_kernel<NA, true><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(n, s, body);
  else
    ew_kernel<NA, false><<<grid_for(n, kThreads), kThreads, 0, current_stream()>>>(n, s, body);
  DLCORE_CUDA_LAUNCH_CHECK();
}

// ---------------- math helpers ----------------

using kernels::convert;
using kernels::wrap_add;

// The float math of the shared functors (kernels/functors.h) on the device:
// expf / exp, ... (callable from host code too, so the functors stay __host__ __device__).
struct CudaMath {
#define DLCORE_CUDA_MATH1(name)                                                   \
  static __host__ __device__ float name(float v) { return ::name##f(v); }         \
  static __host__ __device__ double name(double v) { return ::name(v); }
  DLCORE_CUDA_MATH1(exp)
  DLCORE_CUDA_MATH1(log)
  DLCORE_CUDA_MATH1(sqrt)
  DLCORE_CUDA_MATH1(sin)
  DLCORE_CUDA_MATH1(cos)
  DLCORE_CUDA_MATH1(tanh)
#undef DLCORE_CUDA_MATH1
  static __host__ __device__ float abs(float v) { return ::fabsf(v); }
  static __host__ __device__ double abs(double v) { return ::fabs(v); }
  static __host__ __device__ float pow(float x, float y) { return ::powf(x, y); }
  static __host__ __device__ double pow(double x, double y) { return ::pow(x, y); }
};

template <class T, class F>
struct BinaryBody {
  const T* a;
  const T* b;
  typename F::out_t* out;
  F f;
  __device__ void operator()(const int64_t (&o)[3]) const { out[o[2]] = f(a[o[0]], b[o[1]]); }
};

template <class T, class F>
void launch_binary(const char* what, const Dims& shape, const void* a, const int64_t* sa, const void* b,
                   const int64_t* sb, void* out, const int64_t* so, F f) {
  using R = typename F::out_t;
  launch<3>(what, shape, {sa, sb, so},
            BinaryBody<T, F>{static_cast<const T*>(a), static_cast<const T*>(b), static_cast<R*>(out), f});
}

template <class T, class F>
struct UnaryBody {
  const T* x;
  T* out;
  F f;
  __device__ void operator()(const int64_t (&o)[2]) const { out[o[1]] = f(x[o[0]]); }
};

// ---------------- where / copy / fill bodies ----------------

template <class T>
struct WhereBody {
  const bool* cond;
  const T* a;
  const T* b;
  T* out;
  __device__ void operator()(const int64_t (&o)[4]) const { out[o[3]] = cond[o[0]] ? a[o[1]] : b[o[2]]; }
};

template <class S, class D>
struct CopyBody {
  const S* src;
  D* dst;
  __device__ void operator()(const int64_t (&o)[2]) const { dst[o[1]] = convert<S, D>(src[o[0]]); }
};

template <class T>
struct FillBody {
  T* dst;
  T value;
  __device__ void operator()(const int64_t (&o)[1]) const { dst[o[0]] = value; }
};

// ---------------- indexing ----------------

// dst (outer, m, inner) = src (outer, n, inner) at rows idx[i] (+n if negative); E is an
// unsigned integer of the element's size (the bytes are moved, not interpreted).
template <class E>
__global__ void index_select_kernel(const E* src, const int64_t* idx, E* dst, int64_t total, int64_t n, int64_t m,
                                    int64_t inner) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const int64_t k = t % inner, rest = t / inner;
    const int64_t i = rest % m, o = rest / m;
    const int64_t j = idx[i] < 0 ? idx[i] + n : idx[i];
    dst[t] = src[(o * n + j) * inner + k];
  }
}

template <class E>
void launch_index_select(const void* src, const int64_t* idx, void* dst, int64_t total, int64_t n, int64_t m,
                         int64_t inner) {
  index_select_kernel<E><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
      static_cast<const E*>(src), idx, static_cast<E*>(dst), total, n, m, inner);
  DLCORE_CUDA_LAUNCH_CHECK();
}

__device__ inline void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double* p, double v) { atomicAdd(p, v); }  // sm_60+
__device__ inline void atomic_add(int64_t* p, int64_t v) {  // wraps around, as the CPU's uint64 add
  static_assert(sizeof(int64_t) == sizeof(unsigned long long), "int64_t must be 64-bit");
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

// dst (outer, n, inner) += src (outer, m, inner) at rows idx[i]; atomics because idx may repeat.
template <class T>
__global__ void index_add_kernel(T* dst, const int64_t* idx, const T* src, int64_t total, int64_t n, int64_t m,
                                 int64_t inner) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const int64_t k = t % inner, rest = t / inner;
    const int64_t i = rest % m, o = rest / m;
    const int64_t j = idx[i] < 0 ? idx[i] + n : idx[i];
    atomic_add(dst + (o * n + j) * inner + k, src[t]);
  }
}

}  // namespace

// ---------------- CudaBackend methods ----------------

void CudaBackend::binary(BinaryOp op, DType dt, const Dims& shape, const void* a, const int64_t* sa, const void* b,
                         const int64_t* sb, void* out, const int64_t* so) {
  const char* name = binary_op_name(op);
  DLCORE_DISPATCH_ALL(dt, name, [&] {
    using T = scalar_t;
    kernels::with_binary_functor<T, CudaMath>(
        op, [&](auto f) { launch_binary<T>(name, shape, a, sa, b, sb, out, so, f); });
  });
}

void CudaBackend::binary_flat(BinaryOp op, DType dt, int64_t n, const void* a, bool a_scalar, const void* b,
                              bool b_scalar, void* out) {
  // One dim of n elements; a scalar operand has stride 0 (its value is read on the device).
  const Dims shape{n};
  const int64_t sa = a_scalar ? 0 : 1, sb = b_scalar ? 0 : 1, so = 1;
  const char* name = binary_op_name(op);
  DLCORE_DISPATCH_ALL(dt, name, [&] {
    using T = scalar_t;
    kernels::with_binary_functor<T, CudaMath>(
        op, [&](auto f) { launch_binary<T>(name, shape, a, &sa, b, &sb, out, &so, f); });
  });
}

void CudaBackend::unary(UnaryOp op, DType dt, const Dims& shape, const void* x, const int64_t* sx, void* out,
                        const int64_t* so) {
  const char* name = unary_op_name(op);
  DLCORE_DISPATCH_ALL(dt, name, [&] {
    using T = scalar_t;
    kernels::with_unary_functor<T, CudaMath>(op, [&](auto f) {
      launch<2>(name, shape, {sx, so},
                UnaryBody<T, decltype(f)>{static_cast<const T*>(x), static_cast<T*>(out), f});
    });
  });
}

void CudaBackend::where(DType dt, const Dims& shape, const bool* cond, const int64_t* sc, const void* a,
                        const int64_t* sa, const void* b, const int64_t* sb, void* out, const int64_t* so) {
  DLCORE_DISPATCH_ALL(dt, "where", [&] {
    using T = scalar_t;
    launch<4>("where", shape, {sc, sa, sb, so},
              WhereBody<T>{cond, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out)});
  });
}

void CudaBackend::copy(DType src_dt, DType dst_dt, const Dims& shape, const void* src, const int64_t* ss, void* dst,
                       const int64_t* sd) {
  DLCORE_DISPATCH_ALL(src_dt, "copy_", [&] {
    using S = scalar_t;
    DLCORE_DISPATCH_ALL(dst_dt, "copy_", [&] {
      using D = scalar_t;
      if (std::is_same_v<S, D> && shape.size() <= static_cast<size_t>(kMaxDims) && is_contiguous(shape, ss) &&
          is_contiguous(shape, sd)) {
        const int64_t n = numel(shape);
        if (n > 0)
          DLCORE_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(D), cudaMemcpyDeviceToDevice,
                                            current_stream()));
      } else {
        launch<2>("copy_", shape, {ss, sd}, CopyBody<S, D>{static_cast<const S*>(src), static_cast<D*>(dst)});
      }
    });
  });
}

void CudaBackend::fill(DType dt, const Dims& shape, void* dst, const int64_t* sd, double value) {
  DLCORE_DISPATCH_ALL(dt, "fill_", [&] {
    using T = scalar_t;
    // Converted on the host, as the CPU backend does.
    launch<1>("fill_", shape, {sd}, FillBody<T>{static_cast<T*>(dst), static_cast<T>(value)});
  });
}

void CudaBackend::index_select(size_t elem_size, const void* src, const int64_t* idx, void* dst, int64_t outer,
                               int64_t n, int64_t m, int64_t inner) {
  const int64_t total = outer * m * inner;
  if (total == 0) return;
  switch (elem_size) {
    case 1: return launch_index_select<uint8_t>(src, idx, dst, total, n, m, inner);
    case 2: return launch_index_select<uint16_t>(src, idx, dst, total, n, m, inner);
    case 4: return launch_index_select<uint32_t>(src, idx, dst, total, n, m, inner);
    case 8: return launch_index_select<uint64_t>(src, idx, dst, total, n, m, inner);
    default: break;
  }
  throw RuntimeError(str("index_select: unsupported element size ", elem_size, " bytes on CUDA"));
}

void CudaBackend::index_add(DType dt, void* dst, const int64_t* idx, const void* src, int64_t outer, int64_t n,
                            int64_t m, int64_t inner) {
  DLCORE_DISPATCH_NUMERIC(dt, "index_add", [&] {
    using T = scalar_t;
    const int64_t total = outer * m * inner;
    if (total == 0) return;
    index_add_kernel<T><<<grid_for(total, kThreads), kThreads, 0, current_stream()>>>(
        static_cast<T*>(dst), idx, static_cast<const T*>(src), total, n, m, inner);
    DLCORE_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace cuda_impl
}  // namespace dlcore
