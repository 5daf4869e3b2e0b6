// The device dispatch (Note [Device dispatch]): the CPU backend through backend_for,
// the scalar semantics every backend shares (kernels/scalar.h), and the error for a
// device this build lacks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dlcore/backend.h"
#include "dlcore/kernels/scalar.h"
#include "dlcore/ops.h"

using dlcore::Backend;
using dlcore::BinaryOp;
using dlcore::Device;
using dlcore::DeviceType;
using dlcore::DType;

namespace {
Backend& cpu() { return dlcore::backend_for(Device{}); }
}  // namespace

TEST(ScalarSemantics, Int64WrapsAround) {
  const int64_t mx = std::numeric_limits<int64_t>::max(), mn = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(dlcore::kernels::wrap_add(mx, 1), mn);
  EXPECT_EQ(dlcore::kernels::wrap_sub(mn, 1), mx);
  EXPECT_EQ(dlcore::kernels::wrap_mul(mx, 2), -2);
  EXPECT_EQ(dlcore::kernels::ipow(3, 4), 81);
  EXPECT_EQ(dlcore::kernels::ipow(-2, 63), mn);
  EXPECT_EQ(dlcore::kernels::ipow(7, 0), 1);
}

TEST(ScalarSemantics, MaximumPropagatesTheFirstNaN) {
  const double nan = std::nan("");
  EXPECT_TRUE(std::isnan(dlcore::kernels::fmaximum(nan, 1.0)));
  EXPECT_TRUE(std::isnan(dlcore::kernels::fminimum(1.0, nan)));
  EXPECT_EQ(dlcore::kernels::fmaximum(2.0, -1.0), 2.0);
  EXPECT_EQ(dlcore::kernels::fminimum<int64_t>(2, -1), -1);
}

TEST(ScalarSemantics, ConversionsAreDefinedEverywhere) {
  using dlcore::kernels::convert;
  const int64_t mn = std::numeric_limits<int64_t>::min();
  EXPECT_EQ((convert<double, int64_t>(std::nan(""))), mn);
  EXPECT_EQ((convert<float, int64_t>(1e30f)), mn);
  EXPECT_EQ((convert<double, int64_t>(-9.3e18)), mn);
  EXPECT_EQ((convert<double, int64_t>(-2.7)), -2);
  EXPECT_TRUE((convert<double, bool>(0.5)));
  EXPECT_FALSE((convert<int64_t, bool>(0)));
  EXPECT_EQ((convert<bool, float>(true)), 1.0f);
}

TEST(CpuBackend, BinaryFlatWithAScalarOperand) {
  std::vector<int64_t> a{1, 2, 3, std::numeric_limits<int64_t>::max()}, out(4);
  const int64_t two = 2;
  cpu().binary_flat(BinaryOp::Mul, DType::Int64, 4, a.data(), false, &two, true, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{2, 4, 6, -2}));
}

TEST(CpuBackend, ComparisonsWriteBool) {
  std::vector<double> a{1, 5, 3}, b{2, 5, 1};
  bool out[3];
  const dlcore::Dims shape{3};
  const int64_t st[1] = {1};
  cpu().binary(BinaryOp::Ge, DType::Float64, shape, a.data(), st, b.data(), st, out, st);
  EXPECT_FALSE(out[0]);
  EXPECT_TRUE(out[1]);
  EXPECT_TRUE(out[2]);
}

TEST(CpuBackend, StridedCopyConvertsAndFillWritesAView) {
  std::vector<double> src{1.5, std::nan(""), -3.9, 4.0};
  std::vector<int64_t> dst(2, 0);
  const dlcore::Dims shape{2};
  const int64_t ss[1] = {2}, sd[1] = {1};  // every other source element
  cpu().copy(DType::Float64, DType::Int64, shape, src.data(), ss, dst.data(), sd);
  EXPECT_EQ(dst, (std::vector<int64_t>{1, -3}));
  std::vector<float> buf(6, 0.0f);
  const dlcore::Dims fshape{3};
  const int64_t fs[1] = {2};
  cpu().fill(DType::Float32, fshape, buf.data(), fs, 7.0);
  EXPECT_EQ(buf, (std::vector<float>{7, 0, 7, 0, 7, 0}));
}

TEST(CpuBackend, IndexSelectAndIndexAddAreAdjoint) {
  // x (outer 1, n 3, inner 2); idx picks rows 2, -3 (= 0), 2
  std::vector<float> x{1, 2, 3, 4, 5, 6}, sel(6);
  const std::vector<int64_t> idx{2, -3, 2};
  cpu().index_select(sizeof(float), x.data(), idx.data(), sel.data(), 1, 3, 3, 2);
  EXPECT_EQ(sel, (std::vector<float>{5, 6, 1, 2, 5, 6}));
  std::vector<float> acc(6, 0.0f);
  cpu().index_add(DType::Float32, acc.data(), idx.data(), sel.data(), 1, 3, 3, 2);
  EXPECT_EQ(acc, (std::vector<float>{1, 2, 0, 0, 10, 12}));  // row 2 picked twice: added twice
}

TEST(CpuBackend, BatchedMatmulWithBroadcastOperand) {
  // two (2x2) @ (2x1) products sharing B (offset 0 twice)
  std::vector<double> a{1, 2, 3, 4, 5, 6, 7, 8}, b{1, 1}, c(4);
  const int64_t offa[2] = {0, 4}, offb[2] = {0, 0};
  cpu().matmul(DType::Float64, false, false, 2, 1, 2, a.data(), 2, offa, b.data(), 1, offb, c.data(), 2);
  EXPECT_EQ(c, (std::vector<double>{3, 7, 11, 15}));
}

TEST(DeviceDispatch, CudaIsReportedConsistently) {
  if (dlcore::has_backend(DeviceType::CUDA)) {
    EXPECT_TRUE(dlcore::cuda::is_built());
    if (dlcore::cuda::device_count() == 0) {
      EXPECT_THROW(dlcore::backend_for(Device{DeviceType::CUDA, 0}), dlcore::RuntimeError);
    }
  } else {
    EXPECT_FALSE(dlcore::cuda::is_built());
    EXPECT_EQ(dlcore::cuda::device_count(), 0);
    EXPECT_STREQ(dlcore::cuda::gemm_backend(), "none");
    try {
      dlcore::backend_for(Device{DeviceType::CUDA, 0});
      FAIL() << "expected a RuntimeError";
    } catch (const dlcore::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
    }
    EXPECT_THROW(dlcore::zeros({2}, DType::Float32, Device{DeviceType::CUDA, 0}), dlcore::RuntimeError);
  }
  EXPECT_EQ(&dlcore::backend_for(Device{}), &cpu());
  EXPECT_EQ(cpu().type(), DeviceType::CPU);
}

TEST(DeviceDispatch, ToDeviceOnTheSameDeviceIsTheIdentity) {
  const dlcore::Tensor t = dlcore::ones({2, 3});
  EXPECT_TRUE(dlcore::to_device(t, Device{}).same(t));
  EXPECT_DOUBLE_EQ(dlcore::item(dlcore::sum(t, {}, false)), 6.0);
  EXPECT_THROW(dlcore::item(t), dlcore::ValueError);
}
