#pragma once
// CPU matrix multiply (GEMM) kernels for dlcore.
//
// Our own cache-blocked, packed, OpenMP-parallel implementation (no BLAS).
// The SIMD micro-kernel (AVX-512F, AVX2+FMA or portable C++) is picked once,
// at run time, from the CPU's features; see cpp/src/kernels/cpu/gemm.cpp for
// the design notes ([GEMM blocking], [GEMM dispatch], [GEMM threading]).
#include <cstdint>

namespace dlcore::kernels {

// Row-major GEMM: C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C.
// op(A) = A if !trans_a else A^T (A stored row-major as (K,M) with leading dim lda).
// op(B) = B if !trans_b else B^T (B stored row-major as (N,K) with leading dim ldb).
// Leading dimensions are in elements; C rows are ldc apart. beta == 0 means C is not read (may hold NaN).
// Parallelised internally with OpenMP (do not call from inside an OpenMP parallel region: if
// omp_in_parallel() run serial). Thread safe: may be called concurrently from different threads.
// M, N or K may be 0 (K == 0 -> C = beta*C).
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
           const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Which SIMD path the run-time dispatch picked: "avx512", "avx2" or "generic".
// (The environment variable DLCORE_GEMM_ISA=avx2|generic, read once, can force a
// lower path than the CPU supports; used to test every path on one machine.)
const char* gemm_isa();

}  // namespace dlcore::kernels
