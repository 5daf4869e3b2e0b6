// Views (no copy: new shape/strides/offset over the same storage) and joins.
#include <algorithm>
#include <cstring>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"

namespace dlcore {

namespace {
Tensor as_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  Tensor v = Tensor::make_view(x.storage(), std::move(shape), std::move(strides), offset, x.dtype());
  v.impl()->is_view = true;
  return v;
}

RegisterOp reg_reshape("reshape"), reg_transpose("transpose"), reg_permute("permute"), reg_squeeze("squeeze"),
    reg_unsqueeze("unsqueeze"), reg_expand("expand"), reg_slice("slice"), reg_select("select"),
    reg_index_select("index_select"), reg_cat("cat"), reg_slice_backward("slice_backward"),
    reg_index_add("index_add");

using Grads = std::vector<Tensor>;
using Tangents = std::vector<Tensor>;

// A differentiable shape op whose VJP and JVP are other shape ops.
// The input is version-checked (not read) at backward time: an in-place change
// of the base after the view was taken would leave the view's history stale, so
// it is reported instead of giving a wrong gradient.
template <class Fwd, class Vjp, class Jvp>
Tensor view_op(const char* name, const Tensor& x, Fwd&& fwd, Vjp&& vjp, Jvp&& jvp) {
  return differentiable(name, {x}, std::forward<Fwd>(fwd),
      [vjp](const Tensor& g) { return Grads{vjp(g)}; },
      [jvp](const Tangents& t) { return jvp(t[0]); }, {x}, true);
}
}  // namespace

Tensor view_raw(const Tensor& x, const Shape& shape) {
  Shape ns = infer_shape(shape, x.numel());
  Shape st;
  DLCORE_CHECK(view_strides(x.shape(), x.strides(), ns, st), ValueError, "view: a tensor of shape ",
               shape_str(x.shape()), " with strides ", shape_str(x.strides()), " cannot be viewed as ",
               shape_str(ns), " without a copy; use reshape()");
  return as_view(x, ns, st, x.offset());
}

Tensor reshape_raw(const Tensor& x, const Shape& shape) {
  Shape ns = infer_shape(shape, x.numel());
  Shape st;
  if (view_strides(x.shape(), x.strides(), ns, st)) return as_view(x, ns, st, x.offset());
  Tensor c = clone(x);
  return as_view(c, ns, contiguous_strides(ns), 0);
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  const int64_t s = normalize_dim(start_dim, x.dim()), e = normalize_dim(end_dim, x.dim());
  DLCORE_CHECK(s <= e, ValueError, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape ns(x.shape().begin(), x.shape().begin() + s);
  int64_t m = 1;
  for (int64_t d = s; d <= e; ++d) m *= x.shape()[d];
  ns.push_back(m);
  ns.insert(ns.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, ns);
}

Tensor transpose_raw(const Tensor& x, int64_t d0, int64_t d1) {
  if (x.dim() == 0) {
    normalize_dim(d0, 0);
    normalize_dim(d1, 0);
    return x;
  }
  d0 = normalize_dim(d0, x.dim());
  d1 = normalize_dim(d1, x.dim());
  Shape sh = x.shape(), st = x.strides();
  std::swap(sh[d0], sh[d1]);
  std::swap(st[d0], st[d1]);
  return as_view(x, sh, st, x.offset());
}

Tensor permute_raw(const Tensor& x, const std::vector<int64_t>& dims) {
  DLCORE_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), ValueError, "permute: got ", dims.size(),
               " dims ", shape_str(dims), " for a tensor of shape ", shape_str(x.shape()));
  Shape sh(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = normalize_dim(dims[i], x.dim());
    DLCORE_CHECK(!seen[d], ValueError, "permute: dim ", dims[i], " repeats in ", shape_str(dims));
    seen[d] = true;
    sh[i] = x.shape()[d];
    st[i] = x.strides()[d];
  }
  return as_view(x, sh, st, x.offset());
}

Tensor t(const Tensor& x) {
  std::vector<int64_t> dims(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) dims[i] = x.dim() - 1 - i;
  return permute(x, dims);
}

Tensor squeeze_raw(const Tensor& x, std::optional<std::vector<int64_t>> dims) {
  std::vector<bool> drop(x.dim(), false);
  if (!dims) {
    for (int64_t d = 0; d < x.dim(); ++d) drop[d] = x.shape()[d] == 1;
  } else {
    for (int64_t d : *dims) {
      if (x.dim() == 0) {
        normalize_dim(d, 0);
        continue;
      }
      const int64_t n = normalize_dim(d, x.dim());
      drop[n] = x.shape()[n] == 1;  // PyTorch: a dim that is not 1 is left alone
    }
  }
  Shape sh, st;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!drop[d]) {
      sh.push_back(x.shape()[d]);
      st.push_back(x.strides()[d]);
    }
  return as_view(x, sh, st, x.offset());
}

Tensor unsqueeze_raw(const Tensor& x, int64_t dim) {
  const int64_t nd = x.dim() + 1;
  DLCORE_CHECK(dim >= -nd && dim < nd, IndexError, "unsqueeze: dim ", dim, " is out of range for a tensor with ",
               x.dim(), " dims (expected in [", -nd, ", ", nd - 1, "])");
  if (dim < 0) dim += nd;
  Shape sh = x.shape(), st = x.strides();
  const int64_t s = dim < x.dim() ? sh[dim] * st[dim] : 1;
  sh.insert(sh.begin() + dim, 1);
  st.insert(st.begin() + dim, s);
  return as_view(x, sh, st, x.offset());
}

Tensor expand_raw(const Tensor& x, const Shape& shape) {
  DLCORE_CHECK(shape.size() >= x.shape().size(), ValueError, "expand: cannot expand shape ", shape_str(x.shape()),
               " to ", shape_str(shape), " (fewer dims)");
  Shape target = shape;
  const size_t lead = shape.size() - x.shape().size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      DLCORE_CHECK(i >= lead, ValueError, "expand: -1 is not allowed for the new leading dim ", i, " in ",
                   shape_str(shape));
      target[i] = x.shape()[i - lead];
    }
    DLCORE_CHECK(target[i] >= 0, ValueError, "expand: invalid size ", shape[i], " in ", shape_str(shape));
  }
  numel_checked(target);
  Shape st;
  try {
    st = broadcast_strides(x.shape(), x.strides(), target);
  } catch (const ValueError&) {
    throw ValueError(str("expand: shape ", shape_str(x.shape()), " cannot be expanded to ", shape_str(shape),
                         " (only size-1 dims can grow)"));
  }
  return as_view(x, target, st, x.offset());
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

// Python slice semantics, negative steps included (a view with a negative stride).
Tensor slice_raw(const Tensor& x, int64_t dim, int64_t start, int64_t stop, int64_t step) {
  DLCORE_CHECK(x.dim() > 0, IndexError, "cannot slice a 0-d tensor");
  dim = normalize_dim(dim, x.dim());
  DLCORE_CHECK(step != 0, ValueError, "slice step cannot be zero");
  const int64_t n = x.shape()[dim];
  // clamp as Python's PySlice_AdjustIndices: [0, n] for positive steps, [-1, n-1] for negative ones
  auto clamp = [n, step](int64_t v) {
    if (v < 0) v = v < -n ? (step < 0 ? -1 : 0) : v + n;
    else if (v >= n) v = step < 0 ? n - 1 : n;
    return v;
  };
  start = clamp(start);
  stop = clamp(stop);
  int64_t len = 0;  // no overflow for huge steps
  if (step > 0 && stop > start) len = (stop - start - 1) / step + 1;
  if (step < 0 && start > stop) len = (start - stop - 1) / (-step) + 1;
  Shape sh = x.shape(), st = x.strides();
  const int64_t offset = x.offset() + (len > 0 ? start * st[dim] : 0);
  sh[dim] = len;
  st[dim] *= step;
  return as_view(x, sh, st, offset);
}

Tensor select_raw(const Tensor& x, int64_t dim, int64_t index) {
  DLCORE_CHECK(x.dim() > 0, IndexError, "invalid index of a 0-d tensor");
  dim = normalize_dim(dim, x.dim());
  const int64_t n = x.shape()[dim];
  DLCORE_CHECK(index >= -n && index < n, IndexError, "index ", index, " is out of bounds for dim ", dim,
               " with size ", n);
  if (index < 0) index += n;
  Shape sh = x.shape(), st = x.strides();
  const int64_t offset = x.offset() + index * st[dim];
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return as_view(x, sh, st, offset);
}

namespace {
// Index values must lie in [-n, n); checked on the host (one copy for a device index,
// none when the index came from the host with its range noted, see to_device).
void check_indices(const Tensor& idx, int64_t n, int64_t dim) {
  const auto& range = idx.storage()->int_range();
  if (idx.dtype() == DType::Int64 && range && range->first >= -n && range->second < n) return;
  const Tensor ih = contiguous(on_host(idx));
  const int64_t* ip = ih.data<int64_t>();
  for (int64_t i = 0, m = ih.numel(); i < m; ++i)
    DLCORE_CHECK(ip[i] >= -n && ip[i] < n, IndexError, "index ", ip[i], " is out of bounds for dim ", dim,
                 " with size ", n);
}
}  // namespace

Tensor index_select_raw(const Tensor& x, int64_t dim, const Tensor& index) {
  DLCORE_CHECK(index.dtype() == DType::Int64, TypeError, "index tensors must be int64, got ",
               dtype_name(index.dtype()));
  DLCORE_CHECK(x.dim() > 0, IndexError, "cannot index a 0-d tensor with an index tensor");
  dim = normalize_dim(dim, x.dim());
  DLCORE_CHECK(index.device() == x.device(), ValueError, "index_select: the tensor is on ", x.device().str(),
               " but the index is on ", index.device().str());
  const int64_t n = x.shape()[dim], m = index.numel();
  check_indices(index, n, dim);
  const Tensor idx = contiguous(index);
  // (outer, n, inner) -> (outer, m, inner), copying rows of `inner` elements.
  const Tensor xc = contiguous(x);
  Shape sh = x.shape();
  sh[dim] = m;
  Tensor out = Tensor::empty(sh, x.dtype(), x.device());
  const int64_t outer = dims_product(sh, 0, dim), inner = dims_product(sh, dim + 1, x.dim());
  if (out.numel() > 0)
    backend_for(x.device()).index_select(static_cast<size_t>(itemsize(x.dtype())), xc.raw_data(),
                                         idx.data<int64_t>(), out.raw_data(), outer, n, m, inner);
  return out;
}

Tensor cat_raw(const std::vector<Tensor>& xs, int64_t dim) {
  DLCORE_CHECK(!xs.empty(), ValueError, "cat: expected a non-empty list of tensors");
  const Tensor& first = xs[0];
  DLCORE_CHECK(first.dim() > 0, ValueError, "cat: zero-dimensional tensors cannot be concatenated");
  dim = normalize_dim(dim, first.dim());
  DType dt = first.dtype();
  Shape sh = first.shape();
  sh[dim] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool ok = x.dim() == first.dim();
    for (int64_t d = 0; ok && d < x.dim(); ++d) ok = d == dim || x.shape()[d] == first.shape()[d];
    DLCORE_CHECK(ok, ValueError, "cat: tensor ", k, " has shape ", shape_str(x.shape()),
                 " but tensor 0 has shape ", shape_str(first.shape()), " (all dims except dim ", dim,
                 " must match)");
    DLCORE_CHECK(x.device() == first.device(), ValueError, "cat: tensor ", k, " is on ", x.device().str(),
                 " but tensor 0 is on ", first.device().str(), "; move them to one device with .to()");
    sh[dim] += x.shape()[dim];
    dt = promote(dt, x.dtype());
  }
  Tensor out = Tensor::empty(sh, dt, first.device());
  int64_t at = 0;
  for (const Tensor& x : xs) {
    const int64_t len = x.shape()[dim];
    if (len > 0) copy_(slice(out, dim, at, at + len, 1), x);
    at += len;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  DLCORE_CHECK(!xs.empty(), ValueError, "stack: expected a non-empty list of tensors");
  for (size_t k = 1; k < xs.size(); ++k)
    DLCORE_CHECK(xs[k].shape() == xs[0].shape(), ValueError, "stack: tensor ", k, " has shape ",
                 shape_str(xs[k].shape()), " but tensor 0 has shape ", shape_str(xs[0].shape()));
  std::vector<Tensor> us;
  us.reserve(xs.size());
  for (const Tensor& x : xs) us.push_back(unsqueeze(x, dim));
  return cat(us, dim);
}


// ===================== differentiable wrappers =====================
// Views: the VJP maps the gradient back through the inverse view; the JVP
// applies the same view to the tangent.

Tensor view(const Tensor& x, const Shape& shape) {
  return view_op("reshape", x, [&] { return view_raw(x, shape); },
      [xs = x.shape()](const Tensor& g) { return reshape(g, xs); },
      [shape](const Tensor& t) { return reshape(t, shape); });
}

// reshape: vjp: reshape(g, x.shape).   jvp: reshape(t, shape)
Tensor reshape(const Tensor& x, const Shape& shape) {
  return view_op("reshape", x, [&] { return reshape_raw(x, shape); },
      [xs = x.shape()](const Tensor& g) { return reshape(g, xs); },
      [shape](const Tensor& t) { return reshape(t, shape); });
}

// transpose: its own inverse.
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  return view_op("transpose", x, [&] { return transpose_raw(x, d0, d1); },
      [d0, d1](const Tensor& g) { return transpose(g, d0, d1); },
      [d0, d1](const Tensor& t) { return transpose(t, d0, d1); });
}

// permute: vjp: permute(g, inverse permutation).
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  return view_op("permute", x, [&] { return permute_raw(x, dims); },
      [dims, n = x.dim()](const Tensor& g) {
        std::vector<int64_t> inv(dims.size());
        for (size_t i = 0; i < dims.size(); ++i) inv[normalize_dim(dims[i], n)] = static_cast<int64_t>(i);
        return permute(g, inv);
      },
      [dims](const Tensor& t) { return permute(t, dims); });
}

// squeeze / unsqueeze: vjp reshapes back.
Tensor squeeze(const Tensor& x, std::optional<std::vector<int64_t>> dims) {
  return view_op("squeeze", x, [&] { return squeeze_raw(x, dims); },
      [xs = x.shape()](const Tensor& g) { return reshape(g, xs); },
      [dims](const Tensor& t) { return squeeze(t, dims); });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  return view_op("unsqueeze", x, [&] { return unsqueeze_raw(x, dim); },
      [xs = x.shape()](const Tensor& g) { return reshape(g, xs); },
      [dim](const Tensor& t) { return unsqueeze(t, dim); });
}

// expand: vjp: sum_to(g, x.shape) (the reverse of broadcasting).
Tensor expand(const Tensor& x, const Shape& shape) {
  return view_op("expand", x, [&] { return expand_raw(x, shape); },
      [xs = x.shape()](const Tensor& g) { return sum_to(g, xs); },
      [shape](const Tensor& t) { return expand(t, shape); });
}

// slice_backward: zeros of `base_shape` with g written into base[dim][start:stop:step].
//   vjp: slice(gg, dim, start, stop, step).   jvp: slice_backward(t)
Tensor slice_backward(const Tensor& g, const Shape& base_shape, int64_t dim, int64_t start, int64_t stop,
                      int64_t step) {
  return differentiable("slice_backward", {g},
      [&] {
        Tensor z = zeros(base_shape, g.dtype(), g.device());
        copy_(slice_raw(z, dim, start, stop, step), g);
        return z;
      },
      [=](const Tensor& gg) { return Grads{slice(gg, dim, start, stop, step)}; },
      [=](const Tangents& t) { return slice_backward(t[0], base_shape, dim, start, stop, step); });
}

// slice: vjp: slice_backward(g).   jvp: slice(t)
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t stop, int64_t step) {
  return view_op("slice", x, [&] { return slice_raw(x, dim, start, stop, step); },
      [=, xs = x.shape()](const Tensor& g) { return slice_backward(g, xs, dim, start, stop, step); },
      [=](const Tensor& t) { return slice(t, dim, start, stop, step); });
}

// select: vjp: slice_backward(unsqueeze(g)) over the one selected index.
Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  return view_op("select", x, [&] { return select_raw(x, dim, index); },
      [=, xs = x.shape()](const Tensor& g) {
        const int64_t d = normalize_dim(dim, static_cast<int64_t>(xs.size()));
        const int64_t i = index < 0 ? index + xs[d] : index;
        return slice_backward(unsqueeze(g, d), xs, d, i, i + 1, 1);
      },
      [=](const Tensor& t) { return select(t, dim, index); });
}

// index_add: zeros of base_shape, then base[..., index[i], ...] += src[..., i, ...] along dim.
//   vjp: index_select(gg, dim, index).   jvp: index_add(t)
Tensor index_add(const Shape& base_shape, int64_t dim, const Tensor& index, const Tensor& src) {
  DLCORE_CHECK(index.dtype() == DType::Int64, TypeError, "index_add: the index must be int64, got ",
               dtype_name(index.dtype()));
  DLCORE_CHECK(index.device() == src.device(), ValueError, "index_add: the source is on ", src.device().str(),
               " but the index is on ", index.device().str());
  const int64_t nd = static_cast<int64_t>(base_shape.size());
  DLCORE_CHECK(nd > 0 && dim >= 0 && dim < nd, IndexError, "index_add: dim ", dim, " is out of range for shape ",
               shape_str(base_shape));
  Shape expect = base_shape;
  expect[dim] = index.numel();
  DLCORE_CHECK(src.shape() == expect, ValueError, "index_add: a source of shape ", shape_str(src.shape()),
               " does not fit ", index.numel(), " indices into shape ", shape_str(base_shape), " along dim ", dim,
               " (expected ", shape_str(expect), ")");
  check_indices(index, base_shape[dim], dim);
  return differentiable("index_add", {src},
      [&] {
        Tensor z = zeros(base_shape, src.dtype(), src.device());
        const Tensor idx = contiguous(index), sc = contiguous(src);
        const int64_t outer = dims_product(base_shape, 0, dim), inner = dims_product(base_shape, dim + 1, nd);
        if (sc.numel() > 0)
          backend_for(z.device()).index_add(z.dtype(), z.raw_data(), idx.data<int64_t>(), sc.raw_data(), outer,
                                            base_shape[dim], idx.numel(), inner);
        return z;
      },
      [=](const Tensor& gg) { return Grads{index_select(gg, dim, index)}; },
      [=](const Tangents& t) { return index_add(base_shape, dim, index, t[0]); });
}

// index_select: vjp: index_add(g) (rows picked twice get both gradients).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  return differentiable("index_select", {x}, [&] { return index_select_raw(x, dim, index); },
      [=, xs = x.shape()](const Tensor& g) {
        return Grads{index_add(xs, normalize_dim(dim, static_cast<int64_t>(xs.size())), index, g)};
      },
      [=](const Tangents& t) { return index_select(t[0], dim, index); }, {index});
}

// cat: vjp: the slices of g.   jvp: cat of the tangents.
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  bool rec = false, tan = false;
  for (const Tensor& x : xs) {
    rec = rec || detail::any_requires_grad({x});
    tan = tan || detail::any_tangent({x});
  }
  if (!rec && !tan) return cat_raw(xs, dim);
  // Record as a chain of binary cats would lose the single node; build the node by hand.
  Tensor out;
  {
    GradModeGuard g(false);
    ForwardADGuard f(false);
    out = cat_raw(xs, dim);
  }
  const int64_t d = normalize_dim(dim, xs[0].dim());
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.shape()[d]);
  VjpFn vjp = [d, sizes](const Tensor& g) {
    Grads gs;
    int64_t at = 0;
    for (int64_t n : sizes) {
      gs.push_back(slice(g, d, at, at + n, 1));
      at += n;
    }
    return gs;
  };
  JvpFn jvp = [d](const Tangents& t) { return cat(t, d); };
  // cat has a runtime number of inputs, so its node is built here rather than
  // through differentiable(), which takes a fixed list.
  Tensor node_out = out;
  if (rec) {
    auto node = std::make_shared<Node>();
    node->op = "cat";
    for (const Tensor& x : xs) {
      Edge e;
      if (x.requires_grad()) {
        if (x.grad_fn()) e.node = x.grad_fn();
        else e.leaf = x.impl_ptr();
      }
      node->next.push_back(std::move(e));
    }
    node->vjp = std::move(vjp);
    node->out_shape = out.shape();
    node->out_dtype = out.dtype();
    node_out.impl()->grad_fn = std::move(node);
    node_out.impl()->requires_grad = true;
  }
  if (tan) {
    Tangents ts;
    for (const Tensor& x : xs) ts.push_back(x.impl()->tangent ? Tensor(x.impl()->tangent) : zeros(x.shape(), x.dtype(), x.device()));
    GradModeGuard g(false);
    ForwardADGuard f(false);
    node_out.impl()->tangent = to_dtype(jvp(ts), out.dtype()).impl_ptr();
  }
  return node_out;
}

}  // namespace dlcore
