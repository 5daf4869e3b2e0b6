// The CPU backend: the Backend interface (Note [Device dispatch]) over the
// OpenMP kernels of this folder. Each method dispatches the dtype once and picks
// serial or parallel loops by the amount of work (Note [Parallel threshold]).
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "dlcore/backend.h"
#include "dlcore/errors.h"
#include "dlcore/kernels/conv.h"
#include "dlcore/kernels/elementwise.h"
#include "dlcore/kernels/fastmath.h"
#include "dlcore/kernels/functors.h"
#include "dlcore/kernels/gemm.h"
#include "dlcore/kernels/nn.h"
#include "dlcore/kernels/optim.h"
#include "dlcore/kernels/reduce.h"
#include "dlcore/kernels/scalar.h"
#include "dlcore/parallel.h"

namespace dlcore {

namespace {

// The float math of the CPU functors (kernels/functors.h): the vectorised exp of
// fastmath.h, the C library for the rest.
struct CpuMath {
  template <class T> static T exp(T v) { return kernels::exp_any(v); }
  template <class T> static T log(T v) { return std::log(v); }
  template <class T> static T sqrt(T v) { return std::sqrt(v); }
  template <class T> static T sin(T v) { return std::sin(v); }
  template <class T> static T cos(T v) { return std::cos(v); }
  template <class T> static T tanh(T v) { return std::tanh(v); }
  template <class T> static T abs(T v) { return std::abs(v); }
  template <class T> static T pow(T x, T y) { return std::pow(x, y); }
};

using kernels::convert;
using kernels::wrap_add;

int64_t count(const Dims& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// ---------------- matmul ----------------

// Plain triple loop for int64 (no SIMD GEMM for integers).
void gemm_int64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const int64_t* A, int64_t lda,
                const int64_t* B, int64_t ldb, int64_t* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      uint64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t a = ta ? A[k * lda + i] : A[i * lda + k];
        const int64_t b = tb ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
      }
      C[i * ldc + j] = static_cast<int64_t>(acc);
    }
}

// One GEMM per batch entry. Many small products: one matrix per thread, each
// GEMM serial (GEMM checks omp_in_parallel). Few large ones: GEMM parallelises inside.
template <class T>
void run_batches(const T* pa, const T* pb, T* pc, const int64_t* offa, const int64_t* offb, int64_t nb, bool ta,
                 bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb) {
  auto one = [&](int64_t i) {
    if constexpr (std::is_same_v<T, float>)
      kernels::sgemm(ta, tb, M, N, K, 1.0f, pa + offa[i], lda, pb + offb[i], ldb, 0.0f, pc + i * M * N, N);
    else if constexpr (std::is_same_v<T, double>)
      kernels::dgemm(ta, tb, M, N, K, 1.0, pa + offa[i], lda, pb + offb[i], ldb, 0.0, pc + i * M * N, N);
    else
      gemm_int64(ta, tb, M, N, K, pa + offa[i], lda, pb + offb[i], ldb, pc + i * M * N, N);
  };
  const bool batch_parallel = nb > 1 && M * N * K < 128 * 128 * 128;
  if (batch_parallel) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb * M * N * K >= 4 * kParallelGrain)
#endif
    for (int64_t i = 0; i < nb; ++i) one(i);
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
}

template <class T>
T* typed(void* p) { return static_cast<T*>(p); }
template <class T>
const T* typed(const void* p) { return static_cast<const T*>(p); }

class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::CPU; }

  void memcpy(void* dst, Device, const void* src, Device, size_t nbytes) override {
    if (nbytes) std::memcpy(dst, src, nbytes);
  }

  void binary(BinaryOp op, DType dt, const Dims& shape, const void* a, const int64_t* sa, const void* b,
              const int64_t* sb, void* out, const int64_t* so) override {
    const bool par = count(shape) >= kParallelGrain;
    DLCORE_DISPATCH_ALL(dt, binary_op_name(op), [&] {
      using T = scalar_t;
      kernels::with_binary_functor<T, CpuMath>(op, [&](auto f) {
        using R = typename decltype(f)::out_t;
        kernels::binary_loop<T, R>(typed<T>(a), typed<T>(b), static_cast<R*>(out), shape, sa, sb, so, f, par);
      });
    });
  }

  void binary_flat(BinaryOp op, DType dt, int64_t n, const void* a, bool a_scalar, const void* b, bool b_scalar,
                   void* out) override {
    const bool par = n >= kParallelGrain;
    DLCORE_DISPATCH_ALL(dt, binary_op_name(op), [&] {
      using T = scalar_t;
      kernels::with_binary_functor<T, CpuMath>(op, [&](auto f) {
        using R = typename decltype(f)::out_t;
        kernels::binary_flat<T, R>(typed<T>(a), typed<T>(b), static_cast<R*>(out), n, a_scalar, b_scalar, f, par);
      });
    });
  }

  void unary(UnaryOp op, DType dt, const Dims& shape, const void* x, const int64_t* sx, void* out,
             const int64_t* so) override {
    const int64_t n = count(shape);
    if (op == UnaryOp::Exp && dt == DType::Float32 && shape.size() == 1 && sx[0] == 1 && so[0] == 1) {
      // the run-time-dispatched vector loop (Note [Fast exp]), in one chunk per thread
      const float* px = typed<float>(x);
      float* po = typed<float>(out);
      kernels::for_chunks(n, n * 8 >= kParallelGrain,
                          [&](int64_t b, int64_t e) { kernels::exp_shifted(px + b, 0.0f, po + b, e - b); });
      return;
    }
    // Transcendental functions cost ~10-50x an add: parallelise earlier.
    const bool cheap = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu;
    const bool par = n * (cheap ? 1 : 16) >= kParallelGrain;
    DLCORE_DISPATCH_ALL(dt, unary_op_name(op), [&] {
      using T = scalar_t;
      kernels::with_unary_functor<T, CpuMath>(op, [&](auto f) {
        kernels::unary_loop<T, T>(typed<T>(x), typed<T>(out), shape, sx, so, f, par);
      });
    });
  }

  void where(DType dt, const Dims& shape, const bool* cond, const int64_t* sc, const void* a, const int64_t* sa,
             const void* b, const int64_t* sb, void* out, const int64_t* so) override {
    DLCORE_DISPATCH_ALL(dt, "where", [&] {
      kernels::where_loop<scalar_t>(cond, typed<scalar_t>(a), typed<scalar_t>(b), typed<scalar_t>(out), shape, sc,
                                    sa, sb, so, count(shape) >= kParallelGrain);
    });
  }

  void copy(DType src_dt, DType dst_dt, const Dims& shape, const void* src, const int64_t* ss, void* dst,
            const int64_t* sd) override {
    const bool par = count(shape) >= kParallelGrain;
    DLCORE_DISPATCH_ALL(src_dt, "copy_", [&] {
      using S = scalar_t;
      DLCORE_DISPATCH_ALL(dst_dt, "copy_", [&] {
        using D = scalar_t;
        if (std::is_same_v<S, D> && shape.size() == 1 && ss[0] == 1 && sd[0] == 1) {
          std::memcpy(dst, src, static_cast<size_t>(shape[0]) * sizeof(D));
        } else {
          kernels::unary_loop<S, D>(typed<S>(src), typed<D>(dst), shape, ss, sd, convert<S, D>, par);
        }
      });
    });
  }

  void fill(DType dt, const Dims& shape, void* dst, const int64_t* sd, double value) override {
    const Dims zero(shape.size(), 0);
    DLCORE_DISPATCH_ALL(dt, "fill_", [&] {
      const scalar_t v = static_cast<scalar_t>(value);
      kernels::unary_loop<scalar_t, scalar_t>(&v, typed<scalar_t>(dst), shape, zero.data(), sd,
                                              [](scalar_t x) { return x; }, count(shape) >= kParallelGrain);
    });
  }

  void sum(DType dt, const void* x, void* out, int64_t outer, int64_t R, int64_t inner) override {
    DLCORE_DISPATCH_NUMERIC(dt, "sum", [&] {
      kernels::sum_outer_r_inner<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(out), outer, R, inner);
    });
  }

  void minmax(DType dt, const void* x, void* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
              bool is_max) override {
    DLCORE_DISPATCH_NUMERIC(dt, is_max ? "max" : "min", [&] {
      kernels::minmax_outer_r_inner<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(out), idx, outer, R, inner,
                                              is_max);
    });
  }

  void matmul(DType dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
              const int64_t* offa, const void* B, int64_t ldb, const int64_t* offb, void* C,
              int64_t batch) override {
    DLCORE_DISPATCH_NUMERIC(dt, "matmul", [&] {
      run_batches<scalar_t>(typed<scalar_t>(A), typed<scalar_t>(B), typed<scalar_t>(C), offa, offb, batch, ta, tb,
                            M, N, K, lda, ldb);
    });
  }

  void conv2d_forward(DType dt, const void* x, const void* w, const void* bias, void* y,
                      const kernels::Conv2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "conv2d", [&] {
      kernels::conv2d_forward<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(w), typed<scalar_t>(bias),
                                        typed<scalar_t>(y), s);
    });
  }
  void conv2d_backward_input(DType dt, const void* dy, const void* w, void* dx,
                             const kernels::Conv2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "conv2d_input_grad", [&] {
      kernels::conv2d_backward_input<scalar_t>(typed<scalar_t>(dy), typed<scalar_t>(w), typed<scalar_t>(dx), s);
    });
  }
  void conv2d_backward_weight(DType dt, const void* x, const void* dy, void* dw,
                              const kernels::Conv2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "conv2d_weight_grad", [&] {
      kernels::conv2d_backward_weight<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(dy), typed<scalar_t>(dw), s);
    });
  }

  void max_pool2d_forward(DType dt, const void* x, void* y, int64_t* idx, const kernels::Pool2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "max_pool2d", [&] {
      kernels::max_pool2d_forward<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(y), idx, s);
    });
  }
  void max_pool2d_backward(DType dt, const void* dy, const int64_t* idx, void* dx,
                           const kernels::Pool2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "max_pool2d_backward", [&] {
      kernels::max_pool2d_backward<scalar_t>(typed<scalar_t>(dy), idx, typed<scalar_t>(dx), s);
    });
  }
  void pool_gather(DType dt, const void* x, const int64_t* idx, void* y, const kernels::Pool2dShape& s) override {
    DLCORE_DISPATCH_FLOAT(dt, "max_pool2d_gather", [&] {
      kernels::pool_gather<scalar_t>(typed<scalar_t>(x), idx, typed<scalar_t>(y), s);
    });
  }
  void avg_pool2d_forward(DType dt, const void* x, void* y, const kernels::Pool2dShape& s,
                          bool count_include_pad) override {
    DLCORE_DISPATCH_FLOAT(dt, "avg_pool2d", [&] {
      kernels::avg_pool2d_forward<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(y), s, count_include_pad);
    });
  }
  void avg_pool2d_backward(DType dt, const void* dy, void* dx, const kernels::Pool2dShape& s,
                           bool count_include_pad) override {
    DLCORE_DISPATCH_FLOAT(dt, "avg_pool2d_backward", [&] {
      kernels::avg_pool2d_backward<scalar_t>(typed<scalar_t>(dy), typed<scalar_t>(dx), s, count_include_pad);
    });
  }
  void softmax(DType dt, const void* x, void* y, int64_t outer, int64_t C, int64_t inner, bool log) override {
    DLCORE_DISPATCH_FLOAT(dt, log ? "log_softmax" : "softmax", [&] {
      kernels::softmax_forward<scalar_t>(typed<scalar_t>(x), typed<scalar_t>(y), outer, C, inner, log);
    });
  }
  void cross_entropy_forward(DType dt, const void* x, const int64_t* target, void* loss, void* lse, int64_t N,
                             int64_t C, double smoothing) override {
    DLCORE_DISPATCH_FLOAT(dt, "cross_entropy", [&] {
      kernels::cross_entropy_forward<scalar_t>(typed<scalar_t>(x), target, typed<scalar_t>(loss),
                                               typed<scalar_t>(lse), N, C, smoothing);
    });
  }
  void cross_entropy_backward(DType dt, const void* x, const int64_t* target, const void* g, const void* lse,
                              void* dx, int64_t N, int64_t C, double smoothing) override {
    DLCORE_DISPATCH_FLOAT(dt, "cross_entropy_backward", [&] {
      kernels::cross_entropy_backward<scalar_t>(typed<scalar_t>(x), target, typed<scalar_t>(g),
                                                typed<scalar_t>(lse), typed<scalar_t>(dx), N, C, smoothing);
    });
  }
  void multi_margin_forward(DType dt, const void* s, const int64_t* target, void* loss, int64_t N, int64_t C, int p,
                            double margin, bool mean_over_classes) override {
    DLCORE_DISPATCH_FLOAT(dt, "multi_margin", [&] {
      kernels::multi_margin_forward<scalar_t>(typed<scalar_t>(s), target, typed<scalar_t>(loss), N, C, p, margin,
                                              mean_over_classes);
    });
  }

  void index_select(size_t elem_size, const void* src, const int64_t* idx, void* dst, int64_t outer, int64_t n,
                    int64_t m, int64_t inner) override {
    const size_t row = static_cast<size_t>(inner) * elem_size;
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < m; ++i) {
        const int64_t j = idx[i] < 0 ? idx[i] + n : idx[i];
        std::memcpy(d + (o * m + i) * row, s + (o * n + j) * row, row);
      }
  }

  void index_add(DType dt, void* dst, const int64_t* idx, const void* src, int64_t outer, int64_t n, int64_t m,
                 int64_t inner) override {
    DLCORE_DISPATCH_NUMERIC(dt, "index_add", [&] {
      using T = scalar_t;
      T* d = typed<T>(dst);
      const T* s = typed<T>(src);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < m; ++i) {
          const int64_t j = idx[i] < 0 ? idx[i] + n : idx[i];
          T* drow = d + (o * n + j) * inner;
          const T* srow = s + (o * m + i) * inner;
          for (int64_t k = 0; k < inner; ++k) {
            if constexpr (std::is_same_v<T, int64_t>) drow[k] = wrap_add(drow[k], srow[k]);
            else drow[k] += srow[k];
          }
        }
    });
  }

  void sgd_step(DType dt, void* p, const void* grad, void* buf, int64_t n, double lr, double momentum,
                double dampening, bool nesterov, double weight_decay, bool first) override {
    DLCORE_DISPATCH_FLOAT(dt, "sgd_step", [&] {
      kernels::sgd_step<scalar_t>(typed<scalar_t>(p), typed<scalar_t>(grad), typed<scalar_t>(buf), n, lr, momentum,
                                  dampening, nesterov, weight_decay, first);
    });
  }
  void adam_step(DType dt, void* p, const void* grad, void* m, void* v, int64_t n, int64_t t, double lr,
                 double beta1, double beta2, double eps, double weight_decay, bool decoupled) override {
    DLCORE_DISPATCH_FLOAT(dt, "adam_step", [&] {
      kernels::adam_step<scalar_t>(typed<scalar_t>(p), typed<scalar_t>(grad), typed<scalar_t>(m),
                                   typed<scalar_t>(v), n, t, lr, beta1, beta2, eps, weight_decay, decoupled);
    });
  }
};

}  // namespace

Backend* cpu_backend() {
  static CpuBackend b;
  return &b;
}

}  // namespace dlcore
