// Reductions over any set of dims, with keepdim.
//
// Note [Reduction layout]
//   Every reduction runs as a kernel over a contiguous (outer, R, inner) buffer.
//   A contiguous input whose reduced dims are adjacent already has that form
//   (e.g. sum over dim 0 of (N, M) is (1, N, M)); anything else is first permuted
//   so the reduced dims come last and copied once, giving (outer, R, 1).
#include <algorithm>
#include <cmath>
#include <limits>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"

namespace dlcore {

namespace {

struct Plan {
  Tensor x;  // contiguous
  int64_t outer = 1, R = 1, inner = 1;
  Shape out_shape;
};

std::vector<int64_t> normalize_dims(const char* name, const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<int64_t> ds;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) ds.push_back(d);
    return ds;
  }
  for (int64_t d : dims) {
    const int64_t n = normalize_dim(d, x.dim());
    DLCORE_CHECK(std::find(ds.begin(), ds.end(), n) == ds.end(), ValueError, name, ": dim ", d,
                 " appears more than once in ", shape_str(dims));
    ds.push_back(n);
  }
  if (x.dim() == 0) ds.clear();
  std::sort(ds.begin(), ds.end());
  return ds;
}

Plan make_plan(const char* name, const Tensor& x_in, const std::vector<int64_t>& dims, bool keepdim) {
  const std::vector<int64_t> ds = normalize_dims(name, x_in, dims);
  Plan p;
  std::vector<bool> red(x_in.dim(), false);
  for (int64_t d : ds) red[d] = true;
  for (int64_t d = 0; d < x_in.dim(); ++d) {
    if (!red[d]) p.out_shape.push_back(x_in.shape()[d]);
    else if (keepdim) p.out_shape.push_back(1);
  }
  for (int64_t d : ds) p.R *= x_in.shape()[d];
  const bool adjacent = ds.empty() || ds.back() - ds.front() + 1 == static_cast<int64_t>(ds.size());
  if (adjacent) {
    p.x = contiguous(x_in);
    if (!ds.empty()) {
      p.outer = dims_product(x_in.shape(), 0, ds.front());
      p.inner = dims_product(x_in.shape(), ds.back() + 1, x_in.dim());
    } else {
      p.outer = x_in.numel();
    }
  } else {
    std::vector<int64_t> perm;
    for (int64_t d = 0; d < x_in.dim(); ++d)
      if (!red[d]) {
        perm.push_back(d);
        p.outer *= x_in.shape()[d];
      }
    perm.insert(perm.end(), ds.begin(), ds.end());
    p.x = contiguous(permute(x_in, perm));
  }
  return p;
}

Tensor sum_float_or_int(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  Plan p = make_plan("sum", x, dims, keepdim);
  Tensor out = Tensor::empty(p.out_shape, p.x.dtype(), x.device());
  if (out.numel() > 0) backend_for(x.device()).sum(p.x.dtype(), p.x.raw_data(), out.raw_data(), p.outer, p.R, p.inner);
  return out;
}

std::pair<Tensor, Tensor> minmax(const char* name, const Tensor& x_in, const std::vector<int64_t>& dims,
                                 bool keepdim, bool is_max, bool want_idx) {
  if (x_in.dtype() == DType::Bool) {  // reduce as int64, give bool back (as numpy)
    auto r = minmax(name, to_dtype(x_in, DType::Int64), dims, keepdim, is_max, want_idx);
    return {to_dtype(r.first, DType::Bool), r.second};
  }
  const Tensor& x = x_in;
  Plan p = make_plan(name, x, dims, keepdim);
  DLCORE_CHECK(p.R > 0, ValueError, name, ": cannot reduce over an empty dim of the tensor of shape ",
               shape_str(x.shape()));
  Tensor out = Tensor::empty(p.out_shape, p.x.dtype(), x.device());
  Tensor idx = want_idx ? Tensor::empty(p.out_shape, DType::Int64, x.device()) : Tensor();
  if (out.numel() > 0)
    backend_for(x.device()).minmax(p.x.dtype(), p.x.raw_data(), out.raw_data(),
                                   want_idx ? idx.data<int64_t>() : nullptr, p.outer, p.R, p.inner, is_max);
  return {out, idx};
}

}  // namespace

namespace {
RegisterOp reg_sum("sum"), reg_amax("amax"), reg_amin("amin"), reg_max_dim("max_dim"), reg_min_dim("min_dim");

// Shape of the reduction's output with keepdim=True (for broadcasting gradients back).
Shape keepdim_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s = x.shape();
  if (dims.empty() || x.dim() == 0) return Shape(x.dim(), 1);
  for (int64_t d : dims) s[normalize_dim(d, x.dim())] = 1;
  return s;
}
}  // namespace

// sum: out = sum_dims x.   vjp: dx = expand(g, x.shape).   jvp: sum_dims tx
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  if (!is_floating(x.dtype()))
    return sum_float_or_int(x.dtype() == DType::Bool ? to_dtype(x, DType::Int64) : x, dims, keepdim);
  return differentiable("sum", {x}, [&] { return sum_float_or_int(x, dims, keepdim); },
      [ks = keepdim_shape(x, dims), xs = x.shape()](const Tensor& g) {
        return std::vector<Tensor>{expand(reshape(g, ks), xs)};
      },
      [dims, keepdim](const std::vector<Tensor>& t) { return sum(t[0], dims, keepdim); });
}

Tensor mean(const Tensor& x_in, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor x = is_floating(x_in.dtype()) ? x_in : to_dtype(x_in, DType::Float32);
  Tensor s = sum(x, dims, keepdim);
  const int64_t count = s.numel() == 0 ? 0 : x.numel() / s.numel();
  const double inv = count == 0 ? std::numeric_limits<double>::quiet_NaN() : 1.0 / static_cast<double>(count);
  if (count == 0) {
    fill_(s, inv);
    return s;
  }
  return binary_scalar(BinaryOp::Mul, s, inv, ScalarKind::Float, false);
}

// var = sum((x - mean)^2) / (n - correction), composed from differentiable ops.
Tensor var(const Tensor& x_in, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  const Tensor x = is_floating(x_in.dtype()) ? x_in : to_dtype(x_in, DType::Float32);
  const Tensor m = mean(x, dims, true);
  const Tensor d = binary(BinaryOp::Sub, x, m);
  Tensor ss = sum(binary(BinaryOp::Mul, d, d), dims, keepdim);
  const int64_t n = ss.numel() == 0 ? 0 : x.numel() / std::max<int64_t>(ss.numel(), 1);
  const double denom = static_cast<double>(n) - correction;
  return binary_scalar(BinaryOp::Div, ss, denom > 0 ? denom : 0.0, ScalarKind::Float, false);
}

namespace {
// amax/amin: the gradient is shared evenly by all elements equal to the extreme
// (PyTorch's rule).   vjp: dx = g * w, w = mask / count.   jvp: sum(tx * w)
// The extreme is recomputed in the VJP (raw kernel, no history), so the node
// never holds its own output.
Tensor extreme_weights(const char* name, const Tensor& x, const std::vector<int64_t>& dims, bool is_max) {
  const Tensor m = minmax(name, x, dims, true, is_max, false).first;
  const Tensor mask = to_dtype(binary(BinaryOp::Eq, x, m), x.dtype());
  return binary(BinaryOp::Div, mask, sum(mask, dims, true));
}

Tensor extreme_all(const char* name, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, bool is_max) {
  if (!is_floating(x.dtype())) return minmax(name, x, dims, keepdim, is_max, false).first;
  return differentiable(is_max ? "amax" : "amin", {x}, [&] { return minmax(name, x, dims, keepdim, is_max, false).first; },
      [name, x, dims, is_max, ks = keepdim_shape(x, dims)](const Tensor& g) {
        return std::vector<Tensor>{binary(BinaryOp::Mul, reshape(g, ks), extreme_weights(name, x, dims, is_max))};
      },
      [name, x, dims, keepdim, is_max](const std::vector<Tensor>& t) {
        return sum(binary(BinaryOp::Mul, t[0], extreme_weights(name, x, dims, is_max)), dims, keepdim);
      }, {x});
}

// max/min along one dim: values and the first index of the extreme.
//   vjp: dx = onehot(index) * g.   jvp: sum(tx * onehot(index), dim)
Tensor onehot_along(const Tensor& x, int64_t dim, const Tensor& idx_keep) {
  Shape s(x.dim(), 1);
  s[dim] = x.shape()[dim];
  const Tensor pos = reshape(arange(0, static_cast<double>(x.shape()[dim]), 1, DType::Int64, x.device()), s);
  return to_dtype(binary(BinaryOp::Eq, pos, idx_keep), x.dtype());
}

std::pair<Tensor, Tensor> extreme_dim(const char* name, const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  if (!is_floating(x.dtype())) return minmax(name, x, {dim}, keepdim, is_max, true);
  Tensor idx;
  const int64_t d = normalize_dim(dim, x.dim());
  Tensor values = differentiable(is_max ? "max_dim" : "min_dim", {x},
      [&] {
        auto r = minmax(name, x, {dim}, keepdim, is_max, true);
        idx = r.second;
        return r.first;
      },
      [name, x, d, is_max, ks = keepdim_shape(x, {dim})](const Tensor& g) {
        const Tensor ik = minmax(name, x, {d}, true, is_max, true).second;
        return std::vector<Tensor>{binary(BinaryOp::Mul, reshape(g, ks), onehot_along(x, d, ik))};
      },
      [name, x, d, keepdim, is_max](const std::vector<Tensor>& t) {
        const Tensor ik = minmax(name, x, {d}, true, is_max, true).second;
        return sum(binary(BinaryOp::Mul, t[0], onehot_along(x, d, ik)), {d}, keepdim);
      }, {x});
  return {values, idx};
}
}  // namespace

Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme_all("max", x, dims, keepdim, true);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme_all("min", x, dims, keepdim, false);
}
std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim("max", x, dim, keepdim, true);
}
std::pair<Tensor, Tensor> min_dim(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim("min", x, dim, keepdim, false);
}

namespace {
Tensor arg_extreme(const char* name, const Tensor& x, std::optional<int64_t> dim, bool keepdim, bool is_max) {
  if (dim) return minmax(name, x, {*dim}, keepdim, is_max, true).second;
  // over the flattened tensor
  const Tensor flat = reshape(x, {x.numel()});
  Tensor idx = minmax(name, flat, {0}, false, is_max, true).second;
  if (keepdim) idx = reshape(idx, Shape(x.dim(), 1));
  return idx;
}
}  // namespace

Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme("argmax", x, dim, keepdim, true);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme("argmin", x, dim, keepdim, false);
}

}  // namespace dlcore
