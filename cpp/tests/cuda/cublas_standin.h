#pragma once
// Host stand-ins for the cuBLAS entry points gemm.cu calls (defined in cublas_standin.cu,
// compiled only when the build found cublas_v2.h and defines DLCORE_HAVE_CUBLAS; the test
// program never links the real libcublas).
//
// The stand-ins validate their arguments the way cuBLAS documents it (m, n, k >= 0;
// lda >= max(1, transa == N ? m : k); ldb >= max(1, transb == N ? k : n);
// ldc >= max(1, m); batchCount >= 0; a handle from cublasCreate) and return
// CUBLAS_STATUS_INVALID_VALUE otherwise, so that gemm.cu's argument mapping (row-major to
// column-major, the swapped operands, the raised leading dimensions of degenerate operands)
// is checked as cuBLAS would check it. Valid calls compute the column-major product on the
// host (long double accumulation; beta == 0 does not read C), on host memory.
#ifdef DLCORE_HAVE_CUBLAS
#include <cublas_v2.h>

namespace cublas_standin {

struct Stats {
  long gemm_calls = 0;          // cublas{S,D}gemm
  long strided_calls = 0;       // cublas{S,D}gemmStridedBatched
  long rejected = 0;            // calls answered CUBLAS_STATUS_INVALID_VALUE
  long handles_created = 0;
  bool math_mode_set = false;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;  // the last mode set on the handle
  const char* last_rejection = "";               // which check failed last
};

Stats& stats();

}  // namespace cublas_standin
#endif  // DLCORE_HAVE_CUBLAS
