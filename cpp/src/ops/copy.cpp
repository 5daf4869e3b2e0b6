// Copies and dtype conversions.
#include <cmath>
#include <cstring>
#include <limits>

#include "dlcore/autograd.h"
#include "dlcore/kernels/elementwise.h"
#include "dlcore/ops.h"
#include "dlcore/parallel.h"

namespace dlcore {

namespace {

// Conversion with defined results where C++ would have undefined behaviour:
// float -> int64 of NaN or out-of-range values gives INT64_MIN (as numpy on x86).
template <class S, class D>
D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    return v != S(0);
  } else if constexpr (std::is_floating_point_v<S> && std::is_same_v<D, int64_t>) {
    return (v >= S(-9.2233720368547758e18) && v < S(9.2233720368547758e18)) ? static_cast<int64_t>(v)
                                                                            : std::numeric_limits<int64_t>::min();
  } else {
    return static_cast<D>(v);
  }
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage() || a.numel() == 0 || b.numel() == 0) return false;
  return !(a.offset() == b.offset() && a.shape() == b.shape() && a.strides() == b.strides() &&
           a.dtype() == b.dtype());
}

}  // namespace

void copy_raw(const Tensor& dst, const Tensor& src_in) {
  DLCORE_CHECK(dst.device() == src_in.device(), ValueError, "copy_: tensors are on different devices: ",
               dst.device().str(), " and ", src_in.device().str());
  for (int64_t d = 0; d < dst.dim(); ++d)
    DLCORE_CHECK(dst.strides()[d] != 0 || dst.shape()[d] <= 1, RuntimeError, "copy_: the destination of shape ",
                 shape_str(dst.shape()), " is an expanded view (several elements share one memory location); "
                 "clone() it first");
  // A source that shares memory with the destination is read from a snapshot.
  const Tensor src = overlaps(dst, src_in) ? clone(src_in) : src_in;
  Shape shape = dst.shape(), sd = dst.strides();
  Shape ss;
  try {
    ss = broadcast_strides(src.shape(), src.strides(), shape);
  } catch (const ValueError&) {
    throw ValueError(str("cannot copy a tensor of shape ", shape_str(src.shape()), " into one of shape ",
                         shape_str(dst.shape())));
  }
  coalesce_dims(shape, {&ss, &sd});
  const bool par = dst.numel() >= kParallelGrain;
  DLCORE_DISPATCH_ALL(src.dtype(), "copy_", [&] {
    using S = scalar_t;
    DLCORE_DISPATCH_ALL(dst.dtype(), "copy_", [&] {
      using D = scalar_t;
      if (std::is_same_v<S, D> && shape.size() == 1 && ss[0] == 1 && sd[0] == 1) {
        std::memcpy(dst.raw_data(), src.raw_data(), static_cast<size_t>(shape[0]) * sizeof(D));
      } else {
        kernels::unary_loop<S, D>(src.data<S>(), dst.data<D>(), shape, ss.data(), sd.data(), convert<S, D>, par);
      }
    });
  });
  dst.storage()->bump_version();
}

namespace {
RegisterOp reg_clone("clone"), reg_to_dtype("to_dtype");

Tensor clone_raw(const Tensor& x) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_raw(out, x);
  return out;
}
}  // namespace

// copy_: dst <- src. With history, dst becomes expand(to_dtype(src)) for autograd.
void copy_(const Tensor& dst, const Tensor& src) {
  if (detail::any_requires_grad({dst, src}) || detail::any_tangent({dst, src})) {
    check_inplace(dst, "copy_");
    const Tensor r = contiguous(expand(to_dtype(src, dst.dtype()), dst.shape()));
    rebase_history(dst, r);
    return;
  }
  copy_raw(dst, src);
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : clone(x); }

// clone: vjp: g.   jvp: t
Tensor clone(const Tensor& x) {
  return differentiable("clone", {x}, [&] { return clone_raw(x); },
      [](const Tensor& g) { return std::vector<Tensor>{g}; },
      [](const std::vector<Tensor>& t) { return t[0]; });
}

// to_dtype between float types: vjp: to_dtype(g, x.dtype).   jvp: to_dtype(t, dtype)
Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  auto fwd = [&] {
    Tensor out = Tensor::empty(x.shape(), dtype, x.device());
    copy_raw(out, x);
    return out;
  };
  if (!is_floating(dtype) || !is_floating(x.dtype())) return fwd();
  return differentiable("to_dtype", {x}, fwd,
      [xd = x.dtype()](const Tensor& g) { return std::vector<Tensor>{to_dtype(g, xd)}; },
      [dtype](const std::vector<Tensor>& t) { return to_dtype(t[0], dtype); });
}

}  // namespace dlcore
