// Standalone timing for dlcore::kernels::conv2d_* (used while tuning).
// Build: g++ -O3 -std=c++17 -fopenmp -Icpp/include bench/conv_standalone.cpp
//          cpp/src/kernels/cpu/conv.cpp cpp/src/kernels/cpu/gemm.cpp -o /tmp/conv_bench
// Run:   OMP_NUM_THREADS=2 [BEST=1] /tmp/conv_bench [reps] [shape index]
// Prints median GFLOP/s of forward and forward+backward (input and weight grads) on the five
// benchmark shapes; flops = 2*N*K*(C/groups)*R*S*P*Q per pass, fwd+bwd = 3x.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "dlcore/kernels/conv.h"

using dlcore::kernels::Conv2dShape;

static Conv2dShape make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                        int64_t pad) {
  Conv2dShape s{};
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K, s.R = R, s.S = R;
  s.stride_h = s.stride_w = 1;
  s.pad_h = s.pad_w = pad;
  s.dil_h = s.dil_w = 1;
  s.groups = 1;
  s.P = H + 2 * pad - R + 1;
  s.Q = W + 2 * pad - R + 1;
  return s;
}

template <class F>
static double median_seconds(F&& f, int reps) {
  f();
  int inner = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 0.05) {
    f();
    ++inner;
  }
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    auto a = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) f();
    auto b = std::chrono::steady_clock::now();
    ts.push_back(std::chrono::duration<double>(b - a).count() / inner);
  }
  std::sort(ts.begin(), ts.end());
  // BEST=1: fastest run instead of the median (robust to a busy shared machine).
  return std::getenv("BEST") ? ts.front() : ts[ts.size() / 2];
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 7;
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;
  const std::vector<Conv2dShape> shapes = {make(64, 1, 28, 28, 6, 5, 0), make(64, 6, 12, 12, 16, 5, 0),
                                           make(128, 3, 32, 32, 32, 3, 1),
                                           make(128, 32, 16, 16, 64, 3, 1),
                                           make(32, 64, 56, 56, 64, 3, 1)};
  std::mt19937 g(1);
  std::uniform_real_distribution<float> d(-1, 1);
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (only >= 0 && static_cast<int>(i) != only) continue;
    const Conv2dShape& s = shapes[i];
    std::vector<float> x(s.N * s.C * s.H * s.W), w(s.K * s.C * s.R * s.S), b(s.K),
        y(s.N * s.K * s.P * s.Q), dy(y.size()), dx(x.size()), dw(w.size());
    for (auto* v : {&x, &w, &b, &dy})
      for (auto& e : *v) e = d(g);
    const double fl = 2.0 * s.N * s.K * s.C * s.R * s.S * s.P * s.Q;
    auto fwd = [&] { dlcore::kernels::conv2d_forward(x.data(), w.data(), b.data(), y.data(), s); };
    auto bwi = [&] { dlcore::kernels::conv2d_backward_input(dy.data(), w.data(), dx.data(), s); };
    auto bww = [&] { dlcore::kernels::conv2d_backward_weight(x.data(), dy.data(), dw.data(), s); };
    auto all = [&] {
      fwd();
      bwi();
      bww();
    };
    const double tf = median_seconds(fwd, reps), ti = median_seconds(bwi, reps),
                 tw = median_seconds(bww, reps), ta = median_seconds(all, reps);
    std::printf("ours (%lld,%lld,%lld,%lld)->%lld %lldx%lld: fwd %.1f bwd_in %.1f bwd_w %.1f fwdbwd %.1f\n",
                (long long)s.N, (long long)s.C, (long long)s.H, (long long)s.W, (long long)s.K,
                (long long)s.R, (long long)s.S, fl / tf / 1e9, fl / ti / 1e9, fl / tw / 1e9,
                3 * fl / ta / 1e9);
  }
  return 0;
}
