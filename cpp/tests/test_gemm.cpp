// Tests for dlcore::kernels::sgemm / dgemm against a naive triple loop.
//
// The SIMD path under test is the one the CPU dispatch picks; run the binary
// with DLCORE_GEMM_ISA=avx2 or DLCORE_GEMM_ISA=generic to test the other paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dlcore/kernels/gemm.h"
#include "../src/kernels/cpu/gemm_internal.h"

namespace {

using dlcore::kernels::dgemm;
using dlcore::kernels::sgemm;

void gemm_call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm_call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
               int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  dgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Accumulator type of the reference: double for float, long double for double.
template <typename T>
using RefAcc = std::conditional_t<std::is_same_v<T, float>, double, long double>;

// One GEMM problem with its own storage (row-major, padded leading dims).
template <typename T>
struct Case {
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0;
  T alpha = T(1), beta = T(0);
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;
  bool nan_c = false;  // fill C with NaN (only meaningful with beta == 0)
  uint32_t seed = 1;

  std::string str() const {
    return "ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " M=" + std::to_string(M) +
           " N=" + std::to_string(N) + " K=" + std::to_string(K) +
           " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta) +
           " pads=" + std::to_string(pad_a) + "," + std::to_string(pad_b) + "," +
           std::to_string(pad_c);
  }
};

template <typename T>
struct Data {
  int64_t lda, ldb, ldc;
  std::vector<T> A, B, C0;
};

template <typename T>
Data<T> make_data(const Case<T>& c) {
  Data<T> d;
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  d.lda = std::max<int64_t>(a_cols, 1) + c.pad_a;
  d.ldb = std::max<int64_t>(b_cols, 1) + c.pad_b;
  d.ldc = std::max<int64_t>(c.N, 1) + c.pad_c;
  std::mt19937 g(c.seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  d.A.resize(static_cast<size_t>(a_rows * d.lda) + 1);
  d.B.resize(static_cast<size_t>(b_rows * d.ldb) + 1);
  d.C0.resize(static_cast<size_t>(c.M * d.ldc) + 1);
  for (auto& x : d.A) x = T(u(g));
  for (auto& x : d.B) x = T(u(g));
  for (auto& x : d.C0) x = c.nan_c ? std::numeric_limits<T>::quiet_NaN() : T(u(g));
  return d;
}

// Runs the case and compares every element of C (and the padding of C, which
// must be untouched) against a naive triple loop with wide accumulation.
// Tolerance: a forward error bound relative to K, scaled by the magnitudes
// involved: |err| <= (K + 2) * 4 * eps * (|alpha| * sum_k |a_ik b_kj| + |beta c_ij|).
template <typename T>
void run_and_check(const Case<T>& c) {
  SCOPED_TRACE(c.str());
  Data<T> d = make_data(c);
  std::vector<T> C = d.C0;
  gemm_call(c.ta, c.tb, c.M, c.N, c.K, c.alpha, d.A.data(), d.lda, d.B.data(), d.ldb, c.beta,
            C.data(), d.ldc);

  const double eps = std::numeric_limits<T>::epsilon();
  int64_t bad = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < d.ldc; ++j) {
      const T got = C[i * d.ldc + j];
      if (j >= c.N) {  // padding column: must be bit-identical to the input
        if (std::memcmp(&got, &d.C0[i * d.ldc + j], sizeof(T)) != 0 && bad++ < 5)
          ADD_FAILURE() << "padding of C modified at (" << i << "," << j << ")";
        continue;
      }
      RefAcc<T> acc = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const T a = c.ta ? d.A[k * d.lda + i] : d.A[i * d.lda + k];
        const T b = c.tb ? d.B[j * d.ldb + k] : d.B[k * d.ldb + j];
        acc += static_cast<RefAcc<T>>(a) * b;
        mag += std::fabs(static_cast<RefAcc<T>>(a) * b);
      }
      RefAcc<T> ref = static_cast<RefAcc<T>>(c.alpha) * acc;
      RefAcc<T> scale = std::fabs(static_cast<RefAcc<T>>(c.alpha)) * mag;
      if (c.beta != T(0)) {
        ref += static_cast<RefAcc<T>>(c.beta) * d.C0[i * d.ldc + j];
        scale += std::fabs(static_cast<RefAcc<T>>(c.beta) * d.C0[i * d.ldc + j]);
      }
      const double tol = (static_cast<double>(c.K) + 2.0) * 4.0 * eps * static_cast<double>(scale) +
                         std::numeric_limits<T>::min();
      const double err = std::fabs(static_cast<double>(got) - static_cast<double>(ref));
      if (!(err <= tol) && bad++ < 5) {
        ADD_FAILURE() << "C(" << i << "," << j << ") = " << got << ", expected "
                      << static_cast<double>(ref) << " (err " << err << ", tol " << tol << ")";
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

template <typename T>
class GemmTest : public ::testing::Test {};
using GemmTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(GemmTest, GemmTypes);

TEST(GemmIsa, IsKnownName) {
  const std::string isa = dlcore::kernels::gemm_isa();
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "generic") << isa;
}

// 2x2 worked by hand: [[1,2],[3,4]] * [[5,6],[7,8]] = [[19,22],[43,50]].
TYPED_TEST(GemmTest, HandComputed2x2) {
  using T = TypeParam;
  const T A[4] = {1, 2, 3, 4};
  const T B[4] = {5, 6, 7, 8};
  T C[4];
  for (auto& x : C) x = std::numeric_limits<T>::quiet_NaN();  // beta == 0: never read
  gemm_call(false, false, 2, 2, 2, T(1), A, 2, B, 2, T(0), C, 2);
  EXPECT_EQ(C[0], T(19));
  EXPECT_EQ(C[1], T(22));
  EXPECT_EQ(C[2], T(43));
  EXPECT_EQ(C[3], T(50));

  // C = 2 * A * B + 1 * C  with C = ones -> [[39,45],[87,101]].
  for (auto& x : C) x = T(1);
  gemm_call(false, false, 2, 2, 2, T(2), A, 2, B, 2, T(1), C, 2);
  EXPECT_EQ(C[0], T(39));
  EXPECT_EQ(C[1], T(45));
  EXPECT_EQ(C[2], T(87));
  EXPECT_EQ(C[3], T(101));

  // A^T * B = [[1,3],[2,4]] * B = [[26,30],[38,44]].
  gemm_call(true, false, 2, 2, 2, T(1), A, 2, B, 2, T(0), C, 2);
  EXPECT_EQ(C[0], T(26));
  EXPECT_EQ(C[1], T(30));
  EXPECT_EQ(C[2], T(38));
  EXPECT_EQ(C[3], T(44));

  // A * B^T = A * [[5,7],[6,8]] = [[17,23],[39,53]].
  gemm_call(false, true, 2, 2, 2, T(1), A, 2, B, 2, T(0), C, 2);
  EXPECT_EQ(C[0], T(17));
  EXPECT_EQ(C[1], T(23));
  EXPECT_EQ(C[2], T(39));
  EXPECT_EQ(C[3], T(53));

  // A^T * B^T = [[1,3],[2,4]] * [[5,7],[6,8]] = [[23,31],[34,46]].
  gemm_call(true, true, 2, 2, 2, T(1), A, 2, B, 2, T(0), C, 2);
  EXPECT_EQ(C[0], T(23));
  EXPECT_EQ(C[1], T(31));
  EXPECT_EQ(C[2], T(34));
  EXPECT_EQ(C[3], T(46));
}

// Odd sizes around the register tiles (MR = 4/6/14, NR = 4..32) for all four
// transpose combinations.
TYPED_TEST(GemmTest, OddSizesAllTransCombos) {
  using T = TypeParam;
  const int64_t sizes[] = {1, 2, 7, 13, 15, 31, 33, 65, 127};
  uint32_t seed = 1;
  for (int t = 0; t < 4; ++t)
    for (int64_t M : sizes)
      for (int64_t N : sizes)
        for (int64_t K : {int64_t(1), int64_t(7), int64_t(33), int64_t(127)}) {
          Case<T> c;
          c.ta = t & 1;
          c.tb = t & 2;
          c.M = M;
          c.N = N;
          c.K = K;
          c.seed = seed++;
          run_and_check(c);
        }
}

TYPED_TEST(GemmTest, AlphaBeta) {
  using T = TypeParam;
  uint32_t seed = 100;
  for (int t = 0; t < 4; ++t)
    for (T alpha : {T(1), T(-0.5), T(2), T(0)})
      for (T beta : {T(0), T(1), T(0.5), T(-1)}) {
        Case<T> c;
        c.ta = t & 1;
        c.tb = t & 2;
        c.M = 37;
        c.N = 45;
        c.K = 29;
        c.alpha = alpha;
        c.beta = beta;
        c.seed = seed++;
        run_and_check(c);
      }
}

// beta == 0 must not read C: NaN in C must not propagate.
TYPED_TEST(GemmTest, BetaZeroDoesNotReadC) {
  using T = TypeParam;
  for (int t = 0; t < 4; ++t)
    for (int64_t n : {int64_t(3), int64_t(64), int64_t(200)}) {
      Case<T> c;
      c.ta = t & 1;
      c.tb = t & 2;
      c.M = n;
      c.N = n + 5;
      c.K = n;
      c.nan_c = true;
      c.pad_c = 3;
      run_and_check(c);
    }
}

// beta == 1 accumulates into C.
TYPED_TEST(GemmTest, BetaOneAccumulates) {
  using T = TypeParam;
  const int64_t M = 19, N = 23, K = 300;
  Case<T> c;
  c.M = M;
  c.N = N;
  c.K = K;
  Data<T> d = make_data(c);
  std::vector<T> C1(static_cast<size_t>(M * N), T(0));
  gemm_call(false, false, M, N, K, T(1), d.A.data(), d.lda, d.B.data(), d.ldb, T(0), C1.data(), N);
  std::vector<T> C2 = C1;
  gemm_call(false, false, M, N, K, T(1), d.A.data(), d.lda, d.B.data(), d.ldb, T(1), C2.data(), N);
  for (size_t i = 0; i < C1.size(); ++i)
    EXPECT_NEAR(C2[i], 2 * C1[i], 8 * std::numeric_limits<T>::epsilon() * (std::fabs(C1[i]) + 1));
}

TYPED_TEST(GemmTest, LeadingDimsLargerThanWidth) {
  using T = TypeParam;
  uint32_t seed = 200;
  for (int t = 0; t < 4; ++t)
    for (int64_t pad : {int64_t(1), int64_t(5), int64_t(64)}) {
      Case<T> c;
      c.ta = t & 1;
      c.tb = t & 2;
      c.M = 41;
      c.N = 67;
      c.K = 53;
      c.alpha = T(1.5);
      c.beta = T(0.25);
      c.pad_a = pad;
      c.pad_b = pad + 2;
      c.pad_c = pad + 1;
      c.seed = seed++;
      run_and_check(c);
    }
}

TYPED_TEST(GemmTest, ZeroSizes) {
  using T = TypeParam;
  // M == 0 or N == 0: nothing is touched (null pointers are fine).
  gemm_call(false, false, 0, 5, 5, T(1), nullptr, 5, nullptr, 5, T(0), nullptr, 5);
  gemm_call(true, true, 5, 0, 5, T(1), nullptr, 5, nullptr, 5, T(0), nullptr, 1);
  // K == 0: C = beta * C; with beta == 0, C is overwritten with zeros (not read).
  for (T beta : {T(0), T(1), T(-2)}) {
    Case<T> c;
    c.M = 9;
    c.N = 17;
    c.K = 0;
    c.beta = beta;
    c.pad_c = 2;
    c.nan_c = beta == T(0);
    run_and_check(c);
  }
}

// Shapes that the convolution / MLP code uses (skinny, small K or small N).
TYPED_TEST(GemmTest, SkinnyShapes) {
  using T = TypeParam;
  const int64_t shapes[][3] = {{128, 10, 784}, {64, 576, 25}, {10, 128, 784}, {1, 1000, 300},
                               {1000, 1, 300}, {300, 300, 1}, {64, 64, 64},   {6, 9, 2000}};
  uint32_t seed = 300;
  for (int t = 0; t < 4; ++t)
    for (const auto& s : shapes) {
      Case<T> c;
      c.ta = t & 1;
      c.tb = t & 2;
      c.M = s[0];
      c.N = s[1];
      c.K = s[2];
      c.beta = T(0.5);
      c.seed = seed++;
      run_and_check(c);
    }
}

// Large enough to span several MC/KC blocks and to run multi-threaded.
TYPED_TEST(GemmTest, LargeBlockedAndThreaded) {
  using T = TypeParam;
  uint32_t seed = 400;
  for (int t = 0; t < 4; ++t) {
    Case<T> c;
    c.ta = t & 1;
    c.tb = t & 2;
    c.M = 517;
    c.N = 389;
    c.K = 601;
    c.alpha = T(0.75);
    c.beta = T(-0.5);
    c.pad_a = 3;
    c.pad_b = 1;
    c.pad_c = 7;
    c.seed = seed++;
    run_and_check(c);
  }
  // N beyond the NC block size (3072 floats / 2048 doubles).
  Case<T> wide;
  wide.M = 29;
  wide.N = 3500;
  wide.K = 270;
  wide.beta = T(1);
  run_and_check(wide);
  wide.tb = true;
  run_and_check(wide);
}

// Results do not depend on the number of threads (each C element is always
// accumulated in the same order), and concurrent calls are safe.
TYPED_TEST(GemmTest, ConcurrentCallsFromThreads) {
  using T = TypeParam;
  const int64_t M = 260, N = 270, K = 280;
  constexpr int kThreads = 4;
  std::vector<Data<T>> data;
  std::vector<std::vector<T>> expect(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    Case<T> c;
    c.M = M;
    c.N = N;
    c.K = K;
    c.seed = 500 + t;
    data.push_back(make_data(c));
    expect[t] = data[t].C0;
    gemm_call(false, t % 2 == 1, M, N, K, T(1), data[t].A.data(), data[t].lda, data[t].B.data(),
              data[t].ldb, T(0.5), expect[t].data(), data[t].ldc);
  }
  std::vector<std::vector<T>> got(kThreads);
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        got[t] = data[t].C0;
        gemm_call(false, t % 2 == 1, M, N, K, T(1), data[t].A.data(), data[t].lda,
                  data[t].B.data(), data[t].ldb, T(0.5), got[t].data(), data[t].ldc);
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], expect[t]) << "thread " << t;
}

// K lengths around the K-slice boundaries (slices of at most 5/4 * KC, see Note [GEMM
// blocking]): one slice, two and three balanced slices, odd lengths; all trans combinations,
// beta != 0 (later slices accumulate) and ragged M / N edges (masked packing of the last panel).
TYPED_TEST(GemmTest, KSliceBoundaries) {
  using T = TypeParam;
  for (int64_t K : {255, 256, 257, 288, 320, 321, 576, 641, 1000}) {
    for (int t = 0; t < 4; ++t) {
      Case<T> c;
      c.ta = (t & 1) != 0;
      c.tb = (t & 2) != 0;
      c.M = 37;
      c.N = 45;
      c.K = K;
      c.beta = K % 2 ? T(0.5) : T(0);
      c.pad_a = 3;
      c.pad_b = 1;
      c.pad_c = 2;
      c.seed = static_cast<uint32_t>(K + t);
      run_and_check(c);
    }
  }
}

#ifdef _OPENMP
// Called from inside an OpenMP parallel region: runs serially in each thread.
TYPED_TEST(GemmTest, InsideOpenMPParallelRegion) {
  using T = TypeParam;
  Case<T> c;
  c.M = 150;
  c.N = 170;
  c.K = 190;
  Data<T> d = make_data(c);
  std::vector<T> expect(static_cast<size_t>(c.M * d.ldc));
  gemm_call(false, false, c.M, c.N, c.K, T(1), d.A.data(), d.lda, d.B.data(), d.ldb, T(0),
            expect.data(), d.ldc);
  constexpr int kThreads = 3;
  std::vector<std::vector<T>> got(kThreads, std::vector<T>(expect.size()));
#pragma omp parallel for num_threads(kThreads)
  for (int t = 0; t < kThreads; ++t)
    gemm_call(false, false, c.M, c.N, c.K, T(1), d.A.data(), d.lda, d.B.data(), d.ldb, T(0),
              got[t].data(), d.ldc);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], expect) << "thread " << t;
}
#endif

// gemm_packed_a (internal, used by the convolution): A packed once, B supplied panel by panel.
template <typename T>
struct PanelCtx {
  const T* B;
  int64_t ldb;
};
template <typename T>
void pack_panel_plain(const void* vctx, int64_t k0, int64_t kc, int64_t n0, int nr, int NR,
                      T* dst) {
  const PanelCtx<T>& c = *static_cast<const PanelCtx<T>*>(vctx);
  for (int64_t k = 0; k < kc; ++k)
    for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nr ? c.B[(k0 + k) * c.ldb + n0 + j] : T(0);
}

template <typename T>
void check_packed_a(int64_t M, int64_t N, int64_t K, bool ta, T beta) {
  namespace d = dlcore::kernels::detail;
  SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
               " ta=" + std::to_string(ta));
  std::mt19937 g(static_cast<unsigned>(M * 131 + N * 7 + K));
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)),
      C(static_cast<size_t>(M * N)), R;
  for (auto& v : A) v = T(u(g));
  for (auto& v : B) v = T(u(g));
  for (auto& v : C) v = beta == T(0) ? std::numeric_limits<T>::quiet_NaN() : T(u(g));
  R = C;
  const int64_t lda = ta ? M : K;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      long double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += static_cast<long double>(ta ? A[k * lda + i] : A[i * lda + k]) * B[k * N + j];
      R[i * N + j] = static_cast<T>(acc + (beta == T(0) ? 0.0L : static_cast<long double>(beta) *
                                                                     R[i * N + j]));
    }
  std::vector<T> ap(static_cast<size_t>(d::packed_a_size<T>(M, K)) + 1);
  d::pack_a_all<T>(ta, M, K, A.data(), lda, ap.data());
  const PanelCtx<T> ctx{B.data(), N};
  d::gemm_packed_a<T>(M, N, K, ap.data(), &pack_panel_plain<T>, &ctx, beta, C.data(), N);
  const double tol = (std::is_same_v<T, float> ? 2e-5 : 1e-12) * static_cast<double>(K + 1);
  for (size_t e = 0; e < C.size(); ++e) ASSERT_NEAR(C[e], R[e], tol) << "at " << e;
}

TEST(GemmPackedA, MatchesReference) {
  const int64_t dims[][3] = {{1, 1, 1},   {16, 64, 150}, {64, 256, 288}, {17, 33, 700},
                             {6, 5, 3},   {29, 70, 321}, {64, 40, 576}};
  for (const auto& d : dims) {
    for (bool ta : {false, true}) {
      check_packed_a<float>(d[0], d[1], d[2], ta, 0.0f);
      check_packed_a<float>(d[0], d[1], d[2], ta, 0.5f);
      check_packed_a<double>(d[0], d[1], d[2], ta, 0.0);
      check_packed_a<double>(d[0], d[1], d[2], ta, 1.0);
    }
  }
}

}  // namespace
