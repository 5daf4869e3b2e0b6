#pragma once
// The CUDA backend (compiled only with DLCORE_CUDA=ON). `CudaBackend` implements
// the Backend interface of dlcore/backend.h; its methods are defined across the
// .cu files of this folder (one file per kernel family):
//   runtime.cu      caching allocator, streams, copies, device queries, registration
//   elementwise.cu  binary / unary / where / copy / fill / index_select / index_add
//   reduce.cu       sum / minmax
//   gemm.cu         matmul (cuBLAS, with a tiled fallback kernel), the gemm helpers below
//   conv.cu         conv2d forward / input grad / weight grad (im2col + GEMM)
//   nn.cu           pooling, softmax, cross-entropy, multi-margin, SGD / Adam
//
// Every kernel runs on current_stream(). Nothing here synchronises except
// memcpy to the host and synchronize().
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "dlcore/backend.h"
#include "dlcore/errors.h"

namespace dlcore::cuda_impl {

// Throws RuntimeError("CUDA error in <what>: <cudaGetErrorString>").
void check(cudaError_t e, const char* what);
#define DLCORE_CUDA_CHECK(call) ::dlcore::cuda_impl::check((call), #call)
// After a kernel launch: reports launch errors (bad configuration) as RuntimeError.
#define DLCORE_CUDA_LAUNCH_CHECK() ::dlcore::cuda_impl::check(cudaGetLastError(), "kernel launch")

cudaStream_t current_stream();
int current_device();
int num_sms();  // multiprocessors of the current device

// Scratch device memory from the caching allocator, returned at scope exit. Safe
// with asynchronous kernels: every kernel runs on the one current stream, so a
// block handed out again is only touched after the kernels queued before it.
class Workspace {
 public:
  explicit Workspace(size_t nbytes);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }
  template <class T> T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t nbytes_ = 0;
  int device_ = 0;
};

// Grid size for a grid-stride loop over n items.
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  const int64_t cap = 65535LL * 16;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

// Row-major GEMM on device buffers with the conventions of kernels/gemm.h
// (C = alpha op(A) op(B) + beta C; beta == 0 means C is not read). T is float or
// double. cuBLAS when the build found it (DLCORE_HAVE_CUBLAS), else (or with the
// environment variable DLCORE_CUDA_GEMM=fallback) the tiled kernel of gemm.cu.
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);
// `batch` products: A + i*stride_a, B + i*stride_b, C + i*stride_c (stride 0 reuses an operand).
template <class T>
void gemm_strided_batched(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                          int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, T beta, T* C, int64_t ldc,
                          int64_t stride_c, int64_t batch);
// Which GEMM the backend uses: "cublas" or "fallback".
const char* gemm_impl();

class CudaBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CUDA; }
  // runtime.cu
  void set_device(int index) override;
  void synchronize() override;
  void memcpy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) override;
  // elementwise.cu
  void binary(BinaryOp op, DType dt, const Dims& shape, const void* a, const int64_t* sa, const void* b,
              const int64_t* sb, void* out, const int64_t* so) override;
  void binary_flat(BinaryOp op, DType dt, int64_t n, const void* a, bool a_scalar, const void* b, bool b_scalar,
                   void* out) override;
  void unary(UnaryOp op, DType dt, const Dims& shape, const void* x, const int64_t* sx, void* out,
             const int64_t* so) override;
  void where(DType dt, const Dims& shape, const bool* cond, const int64_t* sc, const void* a, const int64_t* sa,
             const void* b, const int64_t* sb, void* out, const int64_t* so) override;
  void copy(DType src_dt, DType dst_dt, const Dims& shape, const void* src, const int64_t* ss, void* dst,
            const int64_t* sd) override;
  void fill(DType dt, const Dims& shape, void* dst, const int64_t* sd, double value) override;
  void index_select(size_t elem_size, const void* src, const int64_t* idx, void* dst, int64_t outer, int64_t n,
                    int64_t m, int64_t inner) override;
  void index_add(DType dt, void* dst, const int64_t* idx, const void* src, int64_t outer, int64_t n, int64_t m,
                 int64_t inner) override;
  // reduce.cu
  void sum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner) override;
  void minmax(DType dt, const void* x, void* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
              bool is_max) override;
  // gemm.cu
  void matmul(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
              const int64_t* offa, const void* B, int64_t ldb, const int64_t* offb, void* C,
              int64_t batch) override;
  // conv.cu
  void conv2d_forward(DType dt, const void* x, const void* w, const void* bias, void* y,
                      const kernels::Conv2dShape& s) override;
  void conv2d_backward_input(DType dt, const void* dy, const void* w, void* dx,
                             const kernels::Conv2dShape& s) override;
  void conv2d_backward_weight(DType dt, const void* x, const void* dy, void* dw,
                              const kernels::Conv2dShape& s) override;
  // nn.cu
  void max_pool2d_forward(DType dt, const void* x, void* y, int64_t* idx, const kernels::Pool2dShape& s) override;
  void max_pool2d_backward(DType dt, const void* dy, const int64_t* idx, void* dx,
                           const kernels::Pool2dShape& s) override;
  void pool_gather(DType dt, const void* x, const int64_t* idx, void* y, const kernels::Pool2dShape& s) override;
  void avg_pool2d_forward(DType dt, const void* x, void* y, const kernels::Pool2dShape& s,
                          bool count_include_pad) override;
  void avg_pool2d_backward(DType dt, const void* dy, void* dx, const kernels::Pool2dShape& s,
                           bool count_include_pad) override;
  void softmax(DType dt, const void* x, void* y, int64_t outer, int64_t C, int64_t inner, bool log) override;
  void cross_entropy_forward(DType dt, const void* x, const int64_t* target, void* loss, void* lse, int64_t N,
                             int64_t C, double smoothing) override;
  void cross_entropy_backward(DType dt, const void* x, const int64_t* target, const void* g, const void* lse,
                              void* dx, int64_t N, int64_t C, double smoothing) override;
  void multi_margin_forward(DType dt, const void* s, const int64_t* target, void* loss, int64_t N, int64_t C, int p,
                            double margin, bool mean_over_classes) override;
  void sgd_step(DType dt, void* p, const void* grad, void* buf, int64_t n, double lr, double momentum,
                double dampening, bool nesterov, double weight_decay, bool first) override;
  void adam_step(DType dt, void* p, const void* grad, void* m, void* v, int64_t n, int64_t t, double lr,
                 double beta1, double beta2, double eps, double weight_decay, bool decoupled) override;
};

// Strided index arithmetic for elementwise kernels: shapes of up to kMaxDims dims
// (after coalescing) are passed by value to the kernel.
constexpr int kMaxDims = 16;

}  // namespace dlcore::cuda_impl
