// Standalone timing for dlcore::kernels::sgemm/dgemm (used while tuning).
// Build: g++ -O3 -std=c++17 -fopenmp -Icpp/include bench/gemm_standalone.cpp
//          cpp/src/kernels/cpu/gemm.cpp -o /tmp/gemm_bench
// Run:   OMP_NUM_THREADS=2 /tmp/gemm_bench [s|d] [M N K]...   (prints median GFLOP/s)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "dlcore/kernels/gemm.h"

template <typename T>
static double bench(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  std::vector<T> A(M * K), B(K * N), C(M * N);
  std::mt19937 g(1);
  std::uniform_real_distribution<double> d(-1, 1);
  for (auto& x : A) x = T(d(g));
  for (auto& x : B) x = T(d(g));
  auto run = [&] {
    if constexpr (sizeof(T) == 4)
      dlcore::kernels::sgemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N,
                             0.0f, C.data(), N);
    else
      dlcore::kernels::dgemm(ta, tb, M, N, K, 1.0, A.data(), ta ? M : K, B.data(), tb ? K : N,
                             0.0, C.data(), N);
  };
  const double flops = 2.0 * M * N * K;
  int reps = std::max<int>(1, static_cast<int>(2e9 / flops));
  run();
  std::vector<double> ts;
  for (int r = 0; r < 7; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) run();
    auto t1 = std::chrono::steady_clock::now();
    ts.push_back(std::chrono::duration<double>(t1 - t0).count() / reps);
  }
  std::sort(ts.begin(), ts.end());
  return flops / ts[ts.size() / 2] / 1e9;
}

int main(int argc, char** argv) {
  const bool dbl = argc > 1 && argv[1][0] == 'd';
  const bool ta = std::getenv("TA") != nullptr, tb = std::getenv("TB") != nullptr;
  std::vector<int64_t> dims;
  for (int i = 2; i < argc; ++i) dims.push_back(std::atoll(argv[i]));
  if (dims.empty()) dims = {64, 64, 64, 256, 256, 256, 512, 512, 512, 1024, 1024, 1024, 2048, 2048, 2048};
  std::printf("isa=%s %s\n", dlcore::kernels::gemm_isa(), dbl ? "dgemm" : "sgemm");
  for (size_t i = 0; i + 2 < dims.size(); i += 3) {
    const double gf = dbl ? bench<double>(dims[i], dims[i + 1], dims[i + 2], ta, tb)
                          : bench<float>(dims[i], dims[i + 1], dims[i + 2], ta, tb);
    std::printf("M=%lld N=%lld K=%lld  %.1f GFLOP/s\n", (long long)dims[i], (long long)dims[i + 1],
                (long long)dims[i + 2], gf);
  }
}
