// Copies and dtype conversions.
#include <cmath>
#include <cstring>
#include <limits>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"

namespace dlcore {

namespace {

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage() || a.numel() == 0 || b.numel() == 0) return false;
  return !(a.offset() == b.offset() && a.shape() == b.shape() && a.strides() == b.strides() &&
           a.dtype() == b.dtype());
}

}  // namespace

void copy_raw(const Tensor& dst, const Tensor& src_in) {
  if (dst.device() != src_in.device()) {
    // Across devices: one contiguous transfer into a staging tensor on dst's device,
    // then the same-device copy below (broadcasting, dtype conversion, strides).
    const Tensor src = contiguous(src_in);
    Tensor staged = Tensor::empty(src.shape(), src.dtype(), dst.device());
    const Device cuda = dst.device().type == DeviceType::CUDA ? dst.device() : src.device();
    backend_for(cuda).memcpy(staged.raw_data(), dst.device(), src.raw_data(), src.device(),
                             static_cast<size_t>(src.numel() * itemsize(src.dtype())));
    copy_raw(dst, staged);
    return;
  }
  for (int64_t d = 0; d < dst.dim(); ++d)
    DLCORE_CHECK(dst.strides()[d] != 0 || dst.shape()[d] <= 1, RuntimeError, "copy_: the destination of shape ",
                 shape_str(dst.shape()), " is an expanded view (several elements share one memory location); "
                 "clone() it first");
  if (dst.storage() == src_in.storage() && dst.offset() == src_in.offset() && dst.shape() == src_in.shape() &&
      dst.strides() == src_in.strides() && dst.dtype() == src_in.dtype()) {
    dst.storage()->bump_version();  // x.copy_(x): nothing to move
    return;
  }
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
  if (dst.numel() > 0)
    backend_for(dst.device()).copy(src.dtype(), dst.dtype(), shape, src.raw_data(), ss.data(), dst.raw_data(),
                                   sd.data());
  dst.storage()->bump_version();
}

namespace {
RegisterOp reg_clone("clone"), reg_to_dtype("to_dtype"), reg_to_device("to_device");

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
    const Tensor r = contiguous(expand(to_dtype(to_device(src, dst.device()), dst.dtype()), dst.shape()));
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

// to_device: vjp: to_device(g, x.device).   jvp: to_device(t, device)
Tensor to_device(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  backend_for(device);  // a clear error for a device this build or machine lacks
  auto fwd = [&, device](const Tensor& src) {
    Tensor out = Tensor::empty(src.shape(), src.dtype(), device);
    copy_raw(out, src);
    return out;
  };
  if (x.dtype() == DType::Int64 && x.device().type == DeviceType::CPU && x.numel() > 0) {
    // Labels and indices go host -> device here: note their range on the way (the
    // contiguous copy made for the scan is the one copied).
    const Tensor xc = contiguous(x);
    const int64_t* p = xc.data<int64_t>();
    int64_t lo = p[0], hi = p[0];
    for (int64_t i = 1, n = xc.numel(); i < n; ++i) {
      lo = p[i] < lo ? p[i] : lo;
      hi = p[i] > hi ? p[i] : hi;
    }
    Tensor out = fwd(xc);
    out.storage()->set_int_range(lo, hi);
    return out;
  }
  if (!is_floating(x.dtype())) return fwd(x);
  return differentiable("to_device", {x}, [&] { return fwd(x); },
      [xd = x.device()](const Tensor& g) { return std::vector<Tensor>{to_device(g, xd)}; },
      [device](const std::vector<Tensor>& t) { return to_device(t[0], device); });
}

Tensor on_host(const Tensor& x) {
  return x.device().type == DeviceType::CPU ? x : to_device(detach(x), Device{});
}

double item(const Tensor& x_in) {
  DLCORE_CHECK(x_in.numel() == 1, ValueError, "only a tensor with one element can be converted to a number, got shape ",
               shape_str(x_in.shape()));
  const Tensor x = on_host(x_in);
  return DLCORE_DISPATCH_ALL(x.dtype(), "item", [&] { return static_cast<double>(*x.data<scalar_t>()); });
}

}  // namespace dlcore
