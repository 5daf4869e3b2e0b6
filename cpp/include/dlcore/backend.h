#pragma once
// Backends: the kernels of one device type behind one interface.
//
// Note [Device dispatch]
//   Op code (cpp/src/ops) checks arguments, builds output tensors and then calls
//   `backend_for(device).some_kernel(...)`: the one place where the device is
//   dispatched (DESIGN.md rule 3). Each backend dispatches the dtype inside. An op
//   is therefore defined once (forward, VJP, JVP in ops/), and only the kernels
//   differ between the CPU (kernels/cpu, OpenMP) and CUDA (kernels/cuda) builds.
//
//   Every method works on raw buffers of this backend's device, with shapes and
//   strides in elements (DESIGN.md rule 2: no Tensor, no graph). Pointers passed
//   for tensor data are device pointers; small metadata (shapes, strides, batch
//   offsets) always lives on the host. Methods run asynchronously on the device's
//   current stream (CUDA); `synchronize()` waits for them. Data-dependent checks
//   (label ranges, index bounds) are done by the op layer before the call.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dlcore/device.h"
#include "dlcore/dtype.h"
#include "dlcore/kernels/conv.h"
#include "dlcore/kernels/nn.h"
#include "dlcore/op_kinds.h"

namespace dlcore {

using Dims = std::vector<int64_t>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;

  // ---- device management ----
  // Makes device `index` current for the calling thread (no-op on the CPU).
  virtual void set_device(int index) {}
  virtual void synchronize() {}
  // Copies nbytes between contiguous buffers; either side may be host memory
  // (dst_dev / src_dev say which). Returns once dst may be read from the host when
  // dst is on the host.
  virtual void memcpy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) = 0;

  // ---- elementwise (shape already broadcast and coalesced; one stride vector per operand) ----
  // out = a (op) b in dtype `dt`; out has dtype Bool for comparisons, else `dt`.
  virtual void binary(BinaryOp op, DType dt, const Dims& shape, const void* a, const int64_t* sa, const void* b,
                      const int64_t* sb, void* out, const int64_t* so) = 0;
  // Flat form of the above: contiguous operands of n elements; an operand whose
  // *_scalar flag is set is one value broadcast over all n.
  virtual void binary_flat(BinaryOp op, DType dt, int64_t n, const void* a, bool a_scalar, const void* b,
                           bool b_scalar, void* out) = 0;
  // out = op(x), x and out of dtype `dt` (float for transcendental ops, int64 allowed for neg/abs/relu).
  virtual void unary(UnaryOp op, DType dt, const Dims& shape, const void* x, const int64_t* sx, void* out,
                     const int64_t* so) = 0;
  // out = cond ? a : b; cond is bool, a, b, out are `dt`.
  virtual void where(DType dt, const Dims& shape, const bool* cond, const int64_t* sc, const void* a,
                     const int64_t* sa, const void* b, const int64_t* sb, void* out, const int64_t* so) = 0;
  // dst = convert(src): float -> int64 of NaN/out-of-range gives INT64_MIN; -> bool is (v != 0).
  virtual void copy(DType src_dt, DType dst_dt, const Dims& shape, const void* src, const int64_t* ss, void* dst,
                    const int64_t* sd) = 0;
  virtual void fill(DType dt, const Dims& shape, void* dst, const int64_t* sd, double value) = 0;

  // ---- reductions over a contiguous (outer, R, inner) buffer, see kernels/reduce.h ----
  virtual void sum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner) = 0;
  // idx may be null. R >= 1. NaN wins; first occurrence on ties.
  virtual void minmax(DType dt, const void* x, void* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
                      bool is_max) = 0;

  // ---- matrix products ----
  // For i < batch: C + i*M*N (row-major, ldc = N) = op(A + offa[i]) @ op(B + offb[i]), see
  // kernels/gemm.h for trans/ld. offa/offb are host arrays of `batch` element offsets.
  // dt is Int64, Float32 or Float64.
  virtual void matmul(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                      const int64_t* offa, const void* B, int64_t ldb, const int64_t* offb, void* C,
                      int64_t batch) = 0;

  // ---- convolution (contiguous NCHW, float dtypes), see kernels/conv.h ----
  virtual void conv2d_forward(DType dt, const void* x, const void* w, const void* bias, void* y,
                              const kernels::Conv2dShape& s) = 0;
  virtual void conv2d_backward_input(DType dt, const void* dy, const void* w, void* dx,
                                     const kernels::Conv2dShape& s) = 0;
  virtual void conv2d_backward_weight(DType dt, const void* x, const void* dy, void* dw,
                                      const kernels::Conv2dShape& s) = 0;

  // ---- pooling, softmax, losses (contiguous, float dtypes), see kernels/nn.h ----
  virtual void max_pool2d_forward(DType dt, const void* x, void* y, int64_t* idx, const kernels::Pool2dShape& s) = 0;
  virtual void max_pool2d_backward(DType dt, const void* dy, const int64_t* idx, void* dx,
                                   const kernels::Pool2dShape& s) = 0;
  virtual void pool_gather(DType dt, const void* x, const int64_t* idx, void* y, const kernels::Pool2dShape& s) = 0;
  virtual void avg_pool2d_forward(DType dt, const void* x, void* y, const kernels::Pool2dShape& s,
                                  bool count_include_pad) = 0;
  virtual void avg_pool2d_backward(DType dt, const void* dy, void* dx, const kernels::Pool2dShape& s,
                                   bool count_include_pad) = 0;
  virtual void softmax(DType dt, const void* x, void* y, int64_t outer, int64_t C, int64_t inner, bool log) = 0;
  // targets are checked in [0, C) by the op layer.
  virtual void cross_entropy_forward(DType dt, const void* x, const int64_t* target, void* loss, void* lse,
                                     int64_t N, int64_t C, double smoothing) = 0;
  virtual void cross_entropy_backward(DType dt, const void* x, const int64_t* target, const void* g,
                                      const void* lse, void* dx, int64_t N, int64_t C, double smoothing) = 0;
  virtual void multi_margin_forward(DType dt, const void* s, const int64_t* target, void* loss, int64_t N,
                                    int64_t C, int p, double margin, bool mean_over_classes) = 0;

  // ---- indexing (contiguous buffers viewed as (outer, n, inner)); indices checked in [-n, n) ----
  // dst (outer, m, inner) = src[:, idx[i] (+n if negative), :]; elem_size in bytes.
  virtual void index_select(size_t elem_size, const void* src, const int64_t* idx, void* dst, int64_t outer,
                            int64_t n, int64_t m, int64_t inner) = 0;
  // dst (outer, n, inner) += src (outer, m, inner) scattered to rows idx[i]; repeated indices add up.
  virtual void index_add(DType dt, void* dst, const int64_t* idx, const void* src, int64_t outer, int64_t n,
                         int64_t m, int64_t inner) = 0;

  // ---- optimiser updates (contiguous, float dtypes), see kernels/optim.h ----
  virtual void sgd_step(DType dt, void* p, const void* grad, void* buf, int64_t n, double lr, double momentum,
                        double dampening, bool nesterov, double weight_decay, bool first) = 0;
  virtual void adam_step(DType dt, void* p, const void* grad, void* m, void* v, int64_t n, int64_t t, double lr,
                         double beta1, double beta2, double eps, double weight_decay, bool decoupled) = 0;
};

// The backend of a device type, with `d.index` made current; RuntimeError naming the
// device when this build has no such backend (CUDA in a CPU-only build) or no such device.
Backend& backend_for(Device d);
void register_backend(DeviceType t, Backend* b);
// Whether this build has a backend for `t`.
bool has_backend(DeviceType t);

// ---- CUDA runtime queries (valid in every build; report no devices without CUDA) ----
namespace cuda {
bool is_built();           // compiled with DLCORE_CUDA=ON
int device_count();        // 0 when not built, no driver or no GPU
std::string device_name(int index);
struct MemoryStats {
  int64_t allocated = 0;       // bytes held by live tensors
  int64_t reserved = 0;        // bytes obtained from cudaMalloc and held by the caching allocator
  int64_t peak_allocated = 0;  // high-water mark of `allocated`
  int64_t malloc_calls = 0;    // cudaMalloc calls so far (a steady training loop stops adding any)
};
MemoryStats memory_stats(int index);
void empty_cache();  // returns cached, unused blocks to the driver
const char* gemm_backend();  // "cublas", "fallback" (own kernel) or "none" (no CUDA backend)
void synchronize();  // waits for all work on the current device
}  // namespace cuda

}  // namespace dlcore
