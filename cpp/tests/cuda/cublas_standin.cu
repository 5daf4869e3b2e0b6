// Host stand-ins for the cuBLAS functions gemm.cu uses; see cublas_standin.h. Without
// DLCORE_HAVE_CUBLAS (the build found no cublas_v2.h) this file is empty.
#ifdef DLCORE_HAVE_CUBLAS
#include "cublas_standin.h"

#include <algorithm>

namespace cublas_standin {

Stats& stats() {
  static Stats s;
  return s;
}

namespace {

char g_handle_object;  // the address is the one handle cublasCreate hands out
cublasHandle_t the_handle() { return reinterpret_cast<cublasHandle_t>(&g_handle_object); }

cublasStatus_t reject(const char* why) {
  ++stats().rejected;
  stats().last_rejection = why;
  return CUBLAS_STATUS_INVALID_VALUE;
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// Column-major C (m x n, ldc) = alpha op(A) op(B) + beta C for `batch` strided products,
// after the argument checks cuBLAS performs (cuBLAS returns before touching memory when
// one fails).
template <class T>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const T* alpha, const T* A, int lda, long long sa, const T* B, int ldb, long long sb,
                    const T* beta, T* C, int ldc, long long sc, int batch) {
  if (h != the_handle()) return reject("handle");
  if (!valid_op(ta) || !valid_op(tb)) return reject("operation");
  if (m < 0 || n < 0 || k < 0) return reject("m, n or k < 0");
  if (batch < 0) return reject("batchCount < 0");
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k)) return reject("lda");
  if (ldb < std::max(1, tb == CUBLAS_OP_N ? k : n)) return reject("ldb");
  if (ldc < std::max(1, m)) return reject("ldc");
  if (alpha == nullptr || beta == nullptr) return reject("alpha or beta is null");
  for (long long z = 0; z < batch; ++z) {
    const T* Az = A + z * sa;
    const T* Bz = B + z * sb;
    T* Cz = C + z * sc;
    for (long long j = 0; j < n; ++j)
      for (long long i = 0; i < m; ++i) {
        long double acc = 0;
        for (long long l = 0; l < k; ++l) {
          const T a = ta == CUBLAS_OP_N ? Az[i + l * lda] : Az[l + i * lda];
          const T b = tb == CUBLAS_OP_N ? Bz[l + j * ldb] : Bz[j + l * ldb];
          acc += static_cast<long double>(a) * b;
        }
        T v = *alpha * static_cast<T>(acc);
        if (*beta != T(0)) v += *beta * Cz[i + j * ldc];
        Cz[i + j * ldc] = v;
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace
}  // namespace cublas_standin

using cublas_standin::stats;

extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return cublas_standin::reject("cublasCreate: null");
  *handle = cublas_standin::the_handle();
  ++stats().handles_created;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
  return handle == cublas_standin::the_handle() ? CUBLAS_STATUS_SUCCESS : cublas_standin::reject("cublasDestroy");
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t) {
  return handle == cublas_standin::the_handle() ? CUBLAS_STATUS_SUCCESS : cublas_standin::reject("cublasSetStream");
}

cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle != cublas_standin::the_handle()) return cublas_standin::reject("cublasSetMathMode");
  stats().math_mode_set = true;
  stats().math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

const char* CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE (stand-in)";
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success" : stats().last_rejection;
}

cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                           int k, const float* alpha, const float* A, int lda, const float* B,
                                           int ldb, const float* beta, float* C, int ldc) {
  ++stats().gemm_calls;
  return cublas_standin::gemm<float>(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t CUBLASWINAPI cublasDgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                           int k, const double* alpha, const double* A, int lda, const double* B,
                                           int ldb, const double* beta, double* C, int ldc) {
  ++stats().gemm_calls;
  return cublas_standin::gemm<double>(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t CUBLASWINAPI cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                                      int m, int n, int k, const float* alpha, const float* A,
                                                      int lda, long long sa, const float* B, int ldb, long long sb,
                                                      const float* beta, float* C, int ldc, long long sc,
                                                      int batch) {
  ++stats().strided_calls;
  return cublas_standin::gemm<float>(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

cublasStatus_t CUBLASWINAPI cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                                      int m, int n, int k, const double* alpha, const double* A,
                                                      int lda, long long sa, const double* B, int ldb, long long sb,
                                                      const double* beta, double* C, int ldc, long long sc,
                                                      int batch) {
  ++stats().strided_calls;
  return cublas_standin::gemm<double>(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, batch);
}

}  // extern "C"

#endif  // DLCORE_HAVE_CUBLAS
