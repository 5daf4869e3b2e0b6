// Creation ops: constant, range and random tensors.
#include <cmath>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"
#include "dlcore/parallel.h"

namespace dlcore {

void fill_(const Tensor& dst, double value) {
  if (detail::any_requires_grad({dst}) || detail::any_tangent({dst})) {
    check_inplace(dst, "fill_");
    rebase_history(dst, full(dst.shape(), value, dst.dtype(), dst.device()));  // a constant: no history
    return;
  }
  Shape shape = dst.shape(), st = dst.strides();
  coalesce_dims(shape, {&st});
  if (dst.numel() > 0) backend_for(dst.device()).fill(dst.dtype(), shape, dst.raw_data(), st.data(), value);
  dst.storage()->bump_version();
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

// Range and random creation ops fill a host tensor, then move it (one copy) when
// another device was asked for.

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  DLCORE_CHECK(step != 0 && std::isfinite(step), ValueError, "arange: step must be finite and non-zero, got ", step);
  DLCORE_CHECK(std::isfinite(start) && std::isfinite(end), ValueError, "arange: start and end must be finite, got ",
               start, " and ", end);
  const double n_d = std::ceil((end - start) / step);
  DLCORE_CHECK(n_d < 9.0e18, ValueError, "arange(", start, ", ", end, ", ", step, ") would have ", n_d,
               " elements");
  const int64_t n = n_d > 0 ? static_cast<int64_t>(n_d) : 0;
  Tensor t = Tensor::empty({n}, dtype);
  DLCORE_DISPATCH_NUMERIC(dtype, "arange", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step);
  });
  return to_device(t, device);
}

Tensor linspace(double start, double end, int64_t steps, DType dtype, Device device) {
  DLCORE_CHECK(steps >= 0, ValueError, "linspace: steps must be non-negative, got ", steps);
  Tensor t = Tensor::empty({steps}, dtype);
  DLCORE_DISPATCH_NUMERIC(dtype, "linspace", [&] {
    scalar_t* p = t.data<scalar_t>();
    const double delta = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * delta);
    if (steps > 1) p[steps - 1] = static_cast<scalar_t>(end);
  });
  return to_device(t, device);
}

Tensor eye(int64_t n, int64_t m, DType dtype, Device device) {
  DLCORE_CHECK(n >= 0 && m >= 0, ValueError, "eye: sizes must be non-negative, got ", n, " and ", m);
  Tensor t = zeros({n, m}, dtype);
  DLCORE_DISPATCH_ALL(dtype, "eye", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = static_cast<scalar_t>(1);
  });
  return to_device(t, device);
}

// Random draws are serial (one generator, a fixed order) so that a seed gives the
// same tensor whatever the thread count.
Tensor rand(const Shape& shape, DType dtype, Generator* gen, Device device) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty(shape, dtype);
  DLCORE_DISPATCH_FLOAT(dtype, "rand", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) {
      scalar_t v = static_cast<scalar_t>(g.next_double());
      if (v >= scalar_t(1)) v = std::nextafter(scalar_t(1), scalar_t(0));  // float32 rounding
      p[i] = v;
    }
  });
  return to_device(t, device);
}

Tensor randn(const Shape& shape, DType dtype, Generator* gen, Device device) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty(shape, dtype);
  DLCORE_DISPATCH_FLOAT(dtype, "randn", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<scalar_t>(g.next_normal());
  });
  return to_device(t, device);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Generator* gen, Device device) {
  DLCORE_CHECK(low < high, ValueError, "randint: expected low < high, got low=", low, ", high=", high);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty(shape, dtype);
  const uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  DLCORE_DISPATCH_NUMERIC(dtype, "randint", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      p[i] = static_cast<scalar_t>(static_cast<int64_t>(static_cast<uint64_t>(low) + g.next_below(span)));
  });
  return to_device(t, device);
}

Tensor randperm(int64_t n, Generator* gen, Device device) {
  DLCORE_CHECK(n >= 0, ValueError, "randperm: n must be non-negative, got ", n);
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty({n}, DType::Int64);
  int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[g.next_below(static_cast<uint64_t>(i) + 1)]);  // Fisher-Yates
  return to_device(t, device);
}

}  // namespace dlcore
