// Pooling, softmax and loss kernels: tiny hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dlcore/kernels/nn.h"
#include "dlcore/kernels/optim.h"

using dlcore::kernels::Pool2dShape;

namespace {
Pool2dShape pool(int64_t H, int64_t W, int64_t k, int64_t stride, int64_t pad) {
  Pool2dShape s{};
  s.planes = 1;
  s.H = H;
  s.W = W;
  s.R = s.S = k;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = pad;
  s.dil_h = s.dil_w = 1;
  s.P = (H + 2 * pad - k) / stride + 1;
  s.Q = (W + 2 * pad - k) / stride + 1;
  return s;
}
}  // namespace

TEST(NnKernels, MaxPoolRoutesGradientToArgmax) {
  // 4x4 input, 2x2 windows, stride 2:
  //  1 5 | 2 0       max 5 at (0,1) -> flat 1; max 7 at (1,3) -> flat 7
  //  3 4 | 6 7
  //  ----+----
  //  9 8 | 0 0       max 9 at (2,0) -> flat 8; ties (all 0): first -> flat 10
  //  1 1 | 0 0
  std::vector<float> x{1, 5, 2, 0, 3, 4, 6, 7, 9, 8, 0, 0, 1, 1, 0, 0};
  const Pool2dShape s = pool(4, 4, 2, 2, 0);
  std::vector<float> y(4);
  std::vector<int64_t> idx(4);
  dlcore::kernels::max_pool2d_forward<float>(x.data(), y.data(), idx.data(), s);
  EXPECT_EQ(y, (std::vector<float>{5, 7, 9, 0}));
  EXPECT_EQ(idx, (std::vector<int64_t>{1, 7, 8, 10}));
  std::vector<float> dy{10, 20, 30, 40}, dx(16, -1.0f);
  dlcore::kernels::max_pool2d_backward<float>(dy.data(), idx.data(), dx.data(), s);
  std::vector<float> expect(16, 0.0f);
  expect[1] = 10;
  expect[7] = 20;
  expect[8] = 30;
  expect[10] = 40;
  EXPECT_EQ(dx, expect);
}

TEST(NnKernels, MaxPoolOverlappingWindowsAccumulate) {
  // 1x3 row, window 1x2 (as 2x2 on a 2x3 image with a zero row), stride 1: the
  // middle element is the max of both windows and receives both gradients.
  std::vector<double> x{0, 9, 0, -1, -1, -1};
  Pool2dShape s = pool(2, 3, 2, 1, 0);
  std::vector<double> y(s.P * s.Q);
  std::vector<int64_t> idx(s.P * s.Q);
  dlcore::kernels::max_pool2d_forward<double>(x.data(), y.data(), idx.data(), s);
  std::vector<double> dy{1.5, 2.5}, dx(6);
  dlcore::kernels::max_pool2d_backward<double>(dy.data(), idx.data(), dx.data(), s);
  EXPECT_DOUBLE_EQ(dx[1], 4.0);  // 1.5 + 2.5
}

TEST(NnKernels, AvgPoolWithPadding) {
  // 2x2 input, 2x2 window, stride 1, pad 1 -> 3x3 output; corner windows see one value.
  std::vector<float> x{1, 2, 3, 4}, y(9);
  const Pool2dShape s = pool(2, 2, 2, 1, 1);
  dlcore::kernels::avg_pool2d_forward<float>(x.data(), y.data(), s, /*count_include_pad=*/true);
  EXPECT_FLOAT_EQ(y[0], 1.0f / 4);  // (0+0+0+1)/4
  EXPECT_FLOAT_EQ(y[4], 2.5f);      // (1+2+3+4)/4
  dlcore::kernels::avg_pool2d_forward<float>(x.data(), y.data(), s, /*count_include_pad=*/false);
  EXPECT_FLOAT_EQ(y[0], 1.0f);  // only one real value
}

TEST(NnKernels, SoftmaxStableAndCrossEntropyFused) {
  // logits (1, 3) = [1000, 1000, 1000 + log 2]: softmax = [1/4, 1/4, 1/2] without overflow
  std::vector<double> x{1000, 1000, 1000 + std::log(2.0)}, y(3);
  dlcore::kernels::softmax_forward<double>(x.data(), y.data(), 1, 3, 1, false);
  EXPECT_NEAR(y[0], 0.25, 1e-12);
  EXPECT_NEAR(y[2], 0.5, 1e-12);
  const int64_t t = 2;
  double loss = 0, lse = 0, g = 1, dx[3];
  dlcore::kernels::cross_entropy_forward<double>(x.data(), &t, &loss, &lse, 1, 3, 0.0);
  EXPECT_NEAR(loss, std::log(2.0), 1e-12);  // -log(1/2)
  EXPECT_NEAR(lse, 1000 + std::log(4.0), 1e-9);
  dlcore::kernels::cross_entropy_backward<double>(x.data(), &t, &g, &lse, dx, 1, 3, 0.0);
  EXPECT_NEAR(dx[0], 0.25, 1e-12);   // softmax - onehot
  EXPECT_NEAR(dx[2], -0.5, 1e-12);
}

TEST(NnKernels, MulticlassHingeLectureExample) {
  // scores (cat, car, frog) per example; the lecture's losses 2.9, 0, 12.9
  std::vector<float> s{3.2f, 5.1f, -1.7f, 1.3f, 4.9f, 2.0f, 2.2f, 2.5f, -3.1f}, loss(3);
  std::vector<int64_t> t{0, 1, 2};
  dlcore::kernels::multi_margin_forward<float>(s.data(), t.data(), loss.data(), 3, 3, 1, 1.0, false);
  EXPECT_NEAR(loss[0], 2.9f, 1e-5);
  EXPECT_NEAR(loss[1], 0.0f, 1e-5);
  EXPECT_NEAR(loss[2], 12.9f, 1e-5);
}

TEST(NnKernels, SgdMomentumAndAdamFirstStep) {
  // SGD momentum 0.9: first step buf = g, p -= lr * g; second buf = 0.9 buf + g
  std::vector<double> p{1.0}, g{0.5}, buf{0.0};
  dlcore::kernels::sgd_step<double>(p.data(), g.data(), buf.data(), 1, 0.1, 0.9, 0.0, false, 0.0, true);
  EXPECT_DOUBLE_EQ(p[0], 1.0 - 0.05);
  dlcore::kernels::sgd_step<double>(p.data(), g.data(), buf.data(), 1, 0.1, 0.9, 0.0, false, 0.0, false);
  EXPECT_DOUBLE_EQ(buf[0], 0.9 * 0.5 + 0.5);
  // Adam's first step moves every weight by about lr (bias-corrected m/sqrt(v) = sign(g))
  std::vector<double> q{1.0}, m{0.0}, v{0.0};
  dlcore::kernels::adam_step<double>(q.data(), g.data(), m.data(), v.data(), 1, 1, 0.01, 0.9, 0.999, 1e-8, 0.0,
                                     false);
  EXPECT_NEAR(q[0], 1.0 - 0.01, 1e-7);
}

#include "dlcore/kernels/fastmath.h"

TEST(NnKernels, FastExpMatchesStdExp) {
  // Note [Fast exp]: a few ulp over the whole float range, exact special values.
  float worst = 0;
  for (float x = -87.0f; x < 88.7f; x += 0.0137f) {
    const float got = dlcore::kernels::exp_f32(x);
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, static_cast<float>(std::abs(got - ref) / ref));
  }
  EXPECT_LT(worst, 4e-7f);
  EXPECT_EQ(dlcore::kernels::exp_f32(0.0f), 1.0f);
  EXPECT_TRUE(std::isfinite(dlcore::kernels::exp_f32(88.7f)));  // the top of the float range
  EXPECT_EQ(dlcore::kernels::exp_f32(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(dlcore::kernels::exp_f32(200.0f)));
  EXPECT_TRUE(std::isnan(dlcore::kernels::exp_f32(NAN)));
  EXPECT_TRUE(std::isinf(dlcore::kernels::exp_f32(INFINITY)));
  EXPECT_EQ(dlcore::kernels::exp_f32(-INFINITY), 0.0f);
}
