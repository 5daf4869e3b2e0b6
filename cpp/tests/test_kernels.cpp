// Elementwise and reduction kernels on raw buffers, with tiny hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "dlcore/kernels/elementwise.h"
#include "dlcore/kernels/reduce.h"
#include "dlcore/ops.h"

TEST(Kernels, BinaryContiguousAndBroadcast) {
  std::vector<float> a{0, 1, 2, 3, 4, 5}, b{10, 20, 30}, out(6);
  // a: (2,3) contiguous, b: (3,) broadcast over rows
  const std::vector<int64_t> shape{2, 3}, sa{3, 1}, sb{0, 1}, so{3, 1};
  dlcore::kernels::binary_loop<float, float>(a.data(), b.data(), out.data(), shape, sa.data(), sb.data(), so.data(),
                                             [](float x, float y) { return x + y; }, false);
  EXPECT_EQ(out, (std::vector<float>{10, 21, 32, 13, 24, 35}));  // 0+10, 1+20, ...
}

TEST(Kernels, UnaryStrided) {
  std::vector<double> x{1, 2, 3, 4, 5, 6}, out(3);
  const std::vector<int64_t> shape{3}, sx{2}, so{1};  // every other element
  dlcore::kernels::unary_loop<double, double>(x.data(), out.data(), shape, sx.data(), so.data(),
                                              [](double v) { return v * v; }, false);
  EXPECT_EQ(out, (std::vector<double>{1, 9, 25}));
}

TEST(Kernels, StridedApplyParallelCoversEveryElementOnce) {
  const int64_t n = 100003;
  std::vector<int64_t> x(n), out(n, -1);
  std::iota(x.begin(), x.end(), 0);
  const std::vector<int64_t> shape{n}, st{1};
  dlcore::kernels::unary_loop<int64_t, int64_t>(x.data(), out.data(), shape, st.data(), st.data(),
                                                [](int64_t v) { return v + 1; }, true);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], i + 1);
}

TEST(Kernels, SumOuterRInner) {
  // x: (2, 3, 2) -> sum over the middle dim
  std::vector<double> x{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, out(4);
  dlcore::kernels::sum_outer_r_inner<double>(x.data(), out.data(), 2, 3, 2);
  EXPECT_EQ(out, (std::vector<double>{9, 12, 27, 30}));  // 1+3+5, 2+4+6, 7+9+11, 8+10+12
}

TEST(Kernels, SumLongFloatIsAccurate) {
  const int64_t n = 1 << 22;
  std::vector<float> x(n, 0.1f);
  float out = 0;
  dlcore::kernels::sum_outer_r_inner<float>(x.data(), &out, 1, n, 1);
  EXPECT_NEAR(out, 0.1f * n, 0.1f * n * 1e-6);
}

TEST(Kernels, MinMaxFirstOccurrenceAndNaN) {
  std::vector<float> x{1, 5, 5, 2}, v(1);
  std::vector<int64_t> idx(1);
  dlcore::kernels::minmax_outer_r_inner<float>(x.data(), v.data(), idx.data(), 1, 4, 1, true);
  EXPECT_EQ(v[0], 5);
  EXPECT_EQ(idx[0], 1);
  std::vector<float> y{1, NAN, 7};
  dlcore::kernels::minmax_outer_r_inner<float>(y.data(), v.data(), idx.data(), 1, 3, 1, true);
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(idx[0], 1);
}

TEST(Ops, ViewSharesStorageAndCopyBroadcasts) {
  dlcore::Tensor t = dlcore::arange(0, 6, 1, dlcore::DType::Float32);
  dlcore::Tensor m = dlcore::reshape(t, {2, 3});
  EXPECT_EQ(m.storage(), t.storage());
  dlcore::Tensor col = dlcore::select(m, 1, 1);  // (2,) = {1, 4}
  EXPECT_EQ(col.data<float>()[0], 1.0f);
  EXPECT_EQ(col.strides()[0], 3);
  dlcore::Tensor z = dlcore::zeros({2, 3});
  dlcore::copy_(z, dlcore::full({3}, 7.0));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(z.data<float>()[i], 7.0f);
}

TEST(Ops, BadInputThrowsTypedErrors) {
  dlcore::Tensor a = dlcore::zeros({2, 3}), b = dlcore::zeros({4});
  EXPECT_THROW(dlcore::binary(dlcore::BinaryOp::Add, a, b), dlcore::ValueError);
  EXPECT_THROW(dlcore::select(a, 0, 5), dlcore::IndexError);
  EXPECT_THROW(dlcore::matmul(a, a), dlcore::ValueError);
  EXPECT_THROW(dlcore::sum(a, {2}, false), dlcore::IndexError);
}

TEST(Ops, MatmulSmall) {
  // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]]
  dlcore::Tensor a = dlcore::reshape(dlcore::arange(1, 5, 1, dlcore::DType::Float64), {2, 2});
  dlcore::Tensor b = dlcore::reshape(dlcore::arange(5, 9, 1, dlcore::DType::Float64), {2, 2});
  dlcore::Tensor c = dlcore::matmul(a, b);
  const double* p = c.data<double>();
  EXPECT_EQ(p[0], 19);
  EXPECT_EQ(p[1], 22);
  EXPECT_EQ(p[2], 43);
  EXPECT_EQ(p[3], 50);
}
