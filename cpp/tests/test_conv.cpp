// Tests for dlcore::kernels::conv2d_forward / conv2d_backward_input / conv2d_backward_weight
// against a naive 7-loop reference with double (long double for T=double) accumulation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dlcore/kernels/conv.h"

namespace {

using dlcore::kernels::Conv2dShape;

template <typename T>
using RefAcc = std::conditional_t<std::is_same_v<T, float>, double, long double>;

Conv2dShape make_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                       int64_t sh = 1, int64_t sw = 1, int64_t ph = 0, int64_t pw = 0,
                       int64_t dh = 1, int64_t dw = 1, int64_t groups = 1) {
  Conv2dShape s{};
  s.N = N;
  s.C = C;
  s.H = H;
  s.W = W;
  s.K = K;
  s.R = R;
  s.S = S;
  s.stride_h = sh;
  s.stride_w = sw;
  s.pad_h = ph;
  s.pad_w = pw;
  s.dil_h = dh;
  s.dil_w = dw;
  s.groups = groups;
  s.P = (H + 2 * ph - dh * (R - 1) - 1) / sh + 1;
  s.Q = (W + 2 * pw - dw * (S - 1) - 1) / sw + 1;
  return s;
}

std::string describe(const Conv2dShape& s) {
  return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " H=" + std::to_string(s.H) +
         " W=" + std::to_string(s.W) + " K=" + std::to_string(s.K) + " R=" + std::to_string(s.R) +
         " S=" + std::to_string(s.S) + " stride=" + std::to_string(s.stride_h) + "," +
         std::to_string(s.stride_w) + " pad=" + std::to_string(s.pad_h) + "," +
         std::to_string(s.pad_w) + " dil=" + std::to_string(s.dil_h) + "," +
         std::to_string(s.dil_w) + " groups=" + std::to_string(s.groups);
}

template <typename T>
std::vector<T> random_vec(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(d(g));
  return v;
}

// Reference results and, per element, the sum of |terms| (the scale of the rounding error).
template <typename T>
struct Ref {
  std::vector<RefAcc<T>> val, mag;
};

// The 7-loop reference visits every (n, k, p, q, c, r, s) term once and feeds all three results.
template <typename T>
void reference(const std::vector<T>& x, const std::vector<T>& w, const std::vector<T>* bias,
               const std::vector<T>& dy, const Conv2dShape& s, Ref<T>* y, Ref<T>* dx,
               Ref<T>* dw) {
  using A = RefAcc<T>;
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  y->val.assign(static_cast<size_t>(s.N * s.K * s.P * s.Q), A(0));
  y->mag = y->val;
  dx->val.assign(static_cast<size_t>(s.N * s.C * s.H * s.W), A(0));
  dx->mag = dx->val;
  dw->val.assign(static_cast<size_t>(s.K * Cg * s.R * s.S), A(0));
  dw->mag = dw->val;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k) {
      const int64_t g = k / Kg;
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const size_t yi = static_cast<size_t>(((n * s.K + k) * s.P + p) * s.Q + q);
          A acc = bias ? A((*bias)[static_cast<size_t>(k)]) : A(0);
          A mag = bias ? std::fabs(acc) : A(0);
          const A g_out = A(dy[yi]);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t ih = p * s.stride_h - s.pad_h + r * s.dil_h;
                const int64_t iw = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                const size_t xi =
                    static_cast<size_t>(((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw);
                const size_t wi = static_cast<size_t>(((k * Cg + c) * s.R + r) * s.S + t);
                const A xv = A(x[xi]), wv = A(w[wi]);
                acc += xv * wv;
                mag += std::fabs(xv * wv);
                dx->val[xi] += g_out * wv;
                dx->mag[xi] += std::fabs(g_out * wv);
                dw->val[wi] += g_out * xv;
                dw->mag[wi] += std::fabs(g_out * xv);
              }
          y->val[yi] = acc;
          y->mag[yi] = mag;
        }
    }
}

template <typename T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-13;
}

template <typename T>
void expect_close(const std::vector<T>& got, const Ref<T>& ref, const std::string& what) {
  ASSERT_EQ(got.size(), ref.val.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - static_cast<double>(ref.val[i]));
    const double bound = tolerance<T>() * (static_cast<double>(ref.mag[i]) + 1e-30);
    if (!(err <= bound)) {
      if (++bad <= 5)
        ADD_FAILURE() << what << " index " << i << ": got " << got[i] << " want "
                      << static_cast<double>(ref.val[i]) << " (err " << err << ", bound " << bound
                      << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

template <typename T>
void check_shape(const Conv2dShape& s, bool with_bias = true) {
  SCOPED_TRACE(describe(s));
  const int64_t Cg = s.C / s.groups;
  const auto x = random_vec<T>(static_cast<size_t>(s.N * s.C * s.H * s.W), 1);
  const auto w = random_vec<T>(static_cast<size_t>(s.K * Cg * s.R * s.S), 2);
  const auto b = random_vec<T>(static_cast<size_t>(s.K), 3);
  const auto dy = random_vec<T>(static_cast<size_t>(s.N * s.K * s.P * s.Q), 4);
  Ref<T> ry, rdx, rdw;
  reference(x, w, with_bias ? &b : nullptr, dy, s, &ry, &rdx, &rdw);

  // Outputs start as NaN: every kernel must overwrite, never accumulate into, its output.
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> y(ry.val.size(), nan), dx(rdx.val.size(), nan), dw(rdw.val.size(), nan);
  dlcore::kernels::conv2d_forward<T>(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(),
                                     s);
  expect_close(y, ry, "forward");
  dlcore::kernels::conv2d_backward_input<T>(dy.data(), w.data(), dx.data(), s);
  expect_close(dx, rdx, "backward_input");
  dlcore::kernels::conv2d_backward_weight<T>(x.data(), dy.data(), dw.data(), s);
  expect_close(dw, rdw, "backward_weight");
}

std::vector<Conv2dShape> general_shapes() {
  return {
      make_shape(2, 3, 7, 7, 4, 3, 3),                          // plain, odd sizes
      make_shape(1, 1, 5, 5, 1, 3, 3),                          // batch 1, single channel
      make_shape(3, 4, 9, 8, 5, 3, 3, 2, 2, 1, 1),              // stride 2, padding
      make_shape(2, 3, 11, 10, 4, 3, 2, 2, 1, 1, 0),            // R != S, mixed strides
      make_shape(2, 3, 12, 11, 6, 3, 3, 1, 1, 2, 2, 2, 2),      // dilation 2
      make_shape(2, 3, 12, 13, 2, 3, 3, 2, 2, 1, 2, 2, 1),      // dilation + stride 2
      make_shape(2, 4, 8, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2),     // groups 2
      make_shape(2, 6, 9, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6),     // depthwise groups=C
      make_shape(2, 6, 9, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 6),    // depthwise multiplier 2, stride 2
      make_shape(3, 8, 6, 5, 5, 1, 1),                          // 1x1
      make_shape(2, 8, 7, 7, 4, 1, 1, 2, 2),                    // 1x1 stride 2
      make_shape(2, 6, 6, 6, 4, 1, 1, 1, 1, 1, 1),              // 1x1 with padding
      make_shape(1, 5, 9, 7, 3, 2, 4, 1, 1, 0, 2),              // R != S, asymmetric pad
      make_shape(2, 3, 5, 5, 2, 5, 5, 1, 1, 3, 3),              // pad > R-1 (col2im path)
      make_shape(1, 2, 3, 3, 2, 3, 3),                          // output 1x1
      make_shape(9, 3, 10, 10, 4, 3, 3, 1, 1, 1, 1),            // several images per item
      make_shape(2, 16, 40, 40, 8, 3, 3, 1, 1, 1, 1),           // row bands (large col)
      make_shape(2, 16, 40, 41, 8, 3, 3, 2, 2, 1, 1),           // row bands, stride 2 (col2im)
      make_shape(1, 32, 64, 64, 8, 1, 1),                       // 1x1, batch 1, large image
      make_shape(2, 16, 9, 9, 4, 3, 3, 1, 1, 1, 1),             // few K, many C: flipped path
      make_shape(2, 32, 10, 9, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2),   // flipped path, dilation, groups
      make_shape(3, 2, 5, 70, 5, 3, 3, 1, 1, 1, 1),             // fused im2col: Q > NR, bands
      make_shape(2, 3, 40, 1, 4, 3, 1, 1, 1, 1, 0),             // fused im2col: Q = 1 (many runs)
      make_shape(2, 2, 9, 33, 3, 3, 3, 1, 1, 0, 4),             // fused im2col: wide pad, Q = 39
      // Fused weight gradient (Kg >= 32, C/groups*R*S < 128):
      make_shape(1, 4, 12, 13, 64, 3, 3, 2, 2, 1, 2, 2, 1, 2),  // batch 1, groups, stride, dil
      make_shape(3, 2, 90, 1, 32, 3, 1, 1, 1, 1, 0),            // Q = 1: > 64 runs per panel
      make_shape(1, 2, 100, 70, 32, 3, 3, 1, 1, 1, 1),          // dy budget -> row bands
      make_shape(2, 12, 9, 9, 32, 3, 3, 1, 1, 1, 1),            // C*R*S = 108: > 3 B panels
      // Fused input gradient (C/groups*R*S < 128):
      make_shape(4, 4, 13, 11, 6, 3, 3, 2, 1, 2, 1, 1, 2, 2),   // groups, stride, dil, pad
      make_shape(3, 1, 30, 3, 4, 5, 2, 1, 1, 0, 1),             // Q < NR: block of several rows
  };
}

// The five benchmark shapes with reduced batch.
std::vector<Conv2dShape> bench_shapes() {
  return {
      make_shape(4, 1, 28, 28, 6, 5, 5),
      make_shape(4, 6, 12, 12, 16, 5, 5),
      make_shape(4, 3, 32, 32, 32, 3, 3, 1, 1, 1, 1),
      make_shape(4, 32, 16, 16, 64, 3, 3, 1, 1, 1, 1),
      make_shape(2, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1),
  };
}

TEST(Conv, GeneralShapesFloat) {
  for (const auto& s : general_shapes()) check_shape<float>(s);
}
TEST(Conv, GeneralShapesDouble) {
  for (const auto& s : general_shapes()) check_shape<double>(s);
}
TEST(Conv, NoBias) {
  check_shape<float>(make_shape(2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1), false);
  check_shape<double>(make_shape(9, 3, 10, 10, 4, 3, 3, 1, 1, 1, 1), false);
}
TEST(Conv, BenchShapesFloat) {
  for (const auto& s : bench_shapes()) check_shape<float>(s);
}
TEST(Conv, BenchShapesDouble) {
  for (const auto& s : bench_shapes()) check_shape<double>(s);
}

// 1x1x3x3 input 1..9, 2x2 all-ones kernel: each output is the sum of a 2x2 window.
TEST(Conv, HandComputed) {
  const Conv2dShape s = make_shape(1, 1, 3, 3, 1, 2, 2);
  ASSERT_EQ(s.P, 2);
  ASSERT_EQ(s.Q, 2);
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> w = {1, 1, 1, 1};
  const float bias = 0.5f;
  std::vector<float> y(4);
  dlcore::kernels::conv2d_forward<float>(x.data(), w.data(), &bias, y.data(), s);
  EXPECT_EQ(y, (std::vector<float>{12.5f, 16.5f, 24.5f, 28.5f}));
  // dy = ones: dx counts how many windows cover each input pixel.
  const std::vector<float> dy = {1, 1, 1, 1};
  std::vector<float> dx(9);
  dlcore::kernels::conv2d_backward_input<float>(dy.data(), w.data(), dx.data(), s);
  EXPECT_EQ(dx, (std::vector<float>{1, 2, 1, 2, 4, 2, 1, 2, 1}));
  // dw[r][s] = sum of the window of x shifted by (r, s).
  std::vector<float> dw(4);
  dlcore::kernels::conv2d_backward_weight<float>(x.data(), dy.data(), dw.data(), s);
  EXPECT_EQ(dw, (std::vector<float>{12, 16, 24, 28}));
}

#ifdef _OPENMP
template <typename T>
void expect_rel_close(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0;
  for (auto v : a) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(err <= 1e-5 * scale) && ++bad <= 5)
      ADD_FAILURE() << what << " index " << i << ": " << a[i] << " vs " << b[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

TEST(Conv, OneAndTwoThreadsAgree) {
  const int saved = omp_get_max_threads();
  const std::vector<Conv2dShape> shapes = {
      make_shape(8, 3, 32, 32, 32, 3, 3, 1, 1, 1, 1), make_shape(16, 6, 12, 12, 16, 5, 5),
      make_shape(2, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1), make_shape(5, 16, 40, 41, 8, 3, 3, 2, 2, 1, 1),
      make_shape(3, 8, 20, 20, 8, 3, 3, 1, 1, 1, 1, 1, 1, 2)};
  for (const auto& s : shapes) {
    SCOPED_TRACE(describe(s));
    const int64_t Cg = s.C / s.groups;
    const auto x = random_vec<float>(static_cast<size_t>(s.N * s.C * s.H * s.W), 5);
    const auto w = random_vec<float>(static_cast<size_t>(s.K * Cg * s.R * s.S), 6);
    const auto b = random_vec<float>(static_cast<size_t>(s.K), 7);
    const auto dy = random_vec<float>(static_cast<size_t>(s.N * s.K * s.P * s.Q), 8);
    std::vector<float> y[2], dx[2], dw[2];
    for (int t = 0; t < 2; ++t) {
      omp_set_num_threads(t + 1);
      y[t].resize(static_cast<size_t>(s.N * s.K * s.P * s.Q));
      dx[t].resize(x.size());
      dw[t].resize(w.size());
      dlcore::kernels::conv2d_forward<float>(x.data(), w.data(), b.data(), y[t].data(), s);
      dlcore::kernels::conv2d_backward_input<float>(dy.data(), w.data(), dx[t].data(), s);
      dlcore::kernels::conv2d_backward_weight<float>(x.data(), dy.data(), dw[t].data(), s);
    }
    omp_set_num_threads(saved);
    expect_rel_close(y[0], y[1], "forward");
    expect_rel_close(dx[0], dx[1], "backward_input");
    expect_rel_close(dw[0], dw[1], "backward_weight");
  }
}
#endif

}  // namespace
