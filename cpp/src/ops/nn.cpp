// Neural-network ops: convolution, pooling, softmax and losses. Each op checks
// its inputs (messages name shapes and values), runs a kernel, and states its
// VJP and JVP beside the forward (Note [One definition per op]).
#include "dlcore/nn.h"

#include <cmath>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/kernels/conv.h"
#include "dlcore/kernels/nn.h"

namespace dlcore {

namespace {

using Grads = std::vector<Tensor>;
using Tangents = std::vector<Tensor>;

RegisterOp reg_conv2d("conv2d"), reg_conv_in("conv2d_input_grad"), reg_conv_w("conv2d_weight_grad"),
    reg_max_pool("max_pool2d"), reg_pool_scatter("max_pool2d_scatter"), reg_pool_gather("max_pool2d_gather"),
    reg_avg_pool("avg_pool2d"), reg_avg_pool_bw("avg_pool2d_backward"), reg_softmax("softmax"),
    reg_log_softmax("log_softmax"), reg_ce("cross_entropy"), reg_margin("multi_margin");

void check_float(const char* op, const Tensor& t, const char* what) {
  DLCORE_CHECK(is_floating(t.dtype()), TypeError, op, ": ", what, " must be float32 or float64, got ",
               dtype_name(t.dtype()));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b, const char* an, const char* bn) {
  DLCORE_CHECK(a.device() == b.device(), ValueError, op, ": ", an, " is on ", a.device().str(), " but ", bn,
               " is on ", b.device().str(), "; move both to one device with .to()");
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b, const char* an, const char* bn) {
  DLCORE_CHECK(a.dtype() == b.dtype(), TypeError, op, ": ", an, " is ", dtype_name(a.dtype()), " but ", bn, " is ",
               dtype_name(b.dtype()), "; convert one with .to()");
}

Shape bias_shape(const Tensor& bias) { return {1, bias.numel(), 1, 1}; }

// ---------------- convolution ----------------

kernels::Conv2dShape conv_shape(const Shape& xs, const Shape& ws, const Conv2dArgs& a) {
  kernels::Conv2dShape s{};
  s.N = xs[0];
  s.C = xs[1];
  s.H = xs[2];
  s.W = xs[3];
  s.K = ws[0];
  s.R = ws[2];
  s.S = ws[3];
  s.stride_h = a.stride_h;
  s.stride_w = a.stride_w;
  s.pad_h = a.pad_h;
  s.pad_w = a.pad_w;
  s.dil_h = a.dil_h;
  s.dil_w = a.dil_w;
  s.groups = a.groups;
  s.P = (s.H + 2 * s.pad_h - s.dil_h * (s.R - 1) - 1) / s.stride_h + 1;
  s.Q = (s.W + 2 * s.pad_w - s.dil_w * (s.S - 1) - 1) / s.stride_w + 1;
  return s;
}

// Validates conv2d arguments; returns the kernel shape.
kernels::Conv2dShape check_conv(const Shape& xs, const Shape& ws, const Conv2dArgs& a) {
  DLCORE_CHECK(xs.size() == 4, ValueError, "conv2d: expected input of shape (N, C, H, W), got ", shape_str(xs));
  DLCORE_CHECK(ws.size() == 4, ValueError, "conv2d: expected weight of shape (K, C/groups, R, S), got ",
               shape_str(ws));
  DLCORE_CHECK(a.stride_h > 0 && a.stride_w > 0, ValueError, "conv2d: stride must be positive, got (", a.stride_h,
               ", ", a.stride_w, ")");
  DLCORE_CHECK(a.pad_h >= 0 && a.pad_w >= 0, ValueError, "conv2d: padding must be non-negative, got (", a.pad_h,
               ", ", a.pad_w, ")");
  DLCORE_CHECK(a.dil_h > 0 && a.dil_w > 0, ValueError, "conv2d: dilation must be positive, got (", a.dil_h, ", ",
               a.dil_w, ")");
  DLCORE_CHECK(a.groups > 0, ValueError, "conv2d: groups must be positive, got ", a.groups);
  DLCORE_CHECK(xs[1] % a.groups == 0 && ws[0] % a.groups == 0, ValueError, "conv2d: groups=", a.groups,
               " must divide both the input channels (", xs[1], ") and the output channels (", ws[0], ")");
  DLCORE_CHECK(ws[1] * a.groups == xs[1], ValueError, "conv2d: input of shape ", shape_str(xs), " has ", xs[1],
               " channels but the weight of shape ", shape_str(ws), " expects ", ws[1] * a.groups,
               " (= ", ws[1], " x groups ", a.groups, ")");
  const int64_t eff_r = a.dil_h * (ws[2] - 1) + 1, eff_s = a.dil_w * (ws[3] - 1) + 1;
  DLCORE_CHECK(eff_r <= xs[2] + 2 * a.pad_h && eff_s <= xs[3] + 2 * a.pad_w, ValueError,
               "conv2d: kernel size ", eff_r, "x", eff_s, " (after dilation) is larger than the padded input ",
               xs[2] + 2 * a.pad_h, "x", xs[3] + 2 * a.pad_w, " (input shape ", shape_str(xs), ", padding (",
               a.pad_h, ", ", a.pad_w, "))");
  return conv_shape(xs, ws, a);
}

// The incoming gradient of a conv2d output must have the output's shape (N, K, P, Q).
void check_conv_grad(const char* op, const Tensor& dy, const kernels::Conv2dShape& s) {
  const Shape out{s.N, s.K, s.P, s.Q};
  DLCORE_CHECK(dy.shape() == out, ValueError, op, ": gradient of shape ", shape_str(dy.shape()),
               " does not match the output shape ", shape_str(out));
}

}  // namespace

// conv2d: y = conv(x, w) + b.
//   vjp: dx = conv2d_input_grad(g, w), dw = conv2d_weight_grad(x, g), db = sum(g, (0, 2, 3))
//   jvp: conv(tx, w) + conv(x, tw) + tb
Tensor conv2d(const Tensor& x_in, const Tensor& w, const Tensor& bias, const Conv2dArgs& a) {
  check_float("conv2d", x_in, "input");
  check_same_dtype("conv2d", x_in, w, "input", "weight");
  check_same_device("conv2d", x_in, w, "input", "weight");
  const bool unbatched = x_in.dim() == 3;
  const Tensor x = unbatched ? unsqueeze(x_in, 0) : x_in;
  const kernels::Conv2dShape s = check_conv(x.shape(), w.shape(), a);
  if (bias.defined()) {
    check_same_dtype("conv2d", x, bias, "input", "bias");
    check_same_device("conv2d", x, bias, "input", "bias");
    DLCORE_CHECK(bias.dim() == 1 && bias.numel() == s.K, ValueError, "conv2d: bias of shape ",
                 shape_str(bias.shape()), " does not match ", s.K, " output channels");
  }
  Tensor y = differentiable("conv2d", {x, w, bias},
      [&] {
        const Tensor xc = contiguous(x), wc = contiguous(w), bc = bias.defined() ? contiguous(bias) : Tensor();
        Tensor out = Tensor::empty({s.N, s.K, s.P, s.Q}, x.dtype(), x.device());
        backend_for(x.device()).conv2d_forward(x.dtype(), xc.raw_data(), wc.raw_data(), bc.defined() ? bc.raw_data() : nullptr, out.raw_data(), s);
        return out;
      },
      [x, w, bias, a](const Tensor& g) {
        return Grads{x.requires_grad() ? conv2d_input_grad(g, w, x.shape(), a) : Tensor(),
                     w.requires_grad() ? conv2d_weight_grad(x, g, w.shape(), a) : Tensor(),
                     bias.defined() && bias.requires_grad() ? sum(g, {0, 2, 3}, false) : Tensor()};
      },
      [x, w, bias, a](const Tangents& t) {
        return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return conv2d(v, w, Tensor(), a); }),
                            if_tangent(t[1], [&](const Tensor& v) { return conv2d(x, v, Tensor(), a); }),
                            if_tangent(t[2], [&](const Tensor& v) { return reshape(v, bias_shape(bias)); })});
      },
      {x, w});
  return unbatched ? squeeze(y, std::vector<int64_t>{0}) : y;
}

// conv2d_input_grad: dx = conv_transpose(dy, w), linear in dy and in w.
//   vjp: d(dy) = conv2d(gg, w), dw = conv2d_weight_grad(gg, dy)
//   jvp: input_grad(t_dy, w) + input_grad(dy, t_w)
Tensor conv2d_input_grad(const Tensor& dy, const Tensor& w, const Shape& x_shape, const Conv2dArgs& a) {
  const kernels::Conv2dShape s = check_conv(x_shape, w.shape(), a);
  check_conv_grad("conv2d_input_grad", dy, s);
  check_same_dtype("conv2d_input_grad", dy, w, "gradient", "weight");
  check_same_device("conv2d_input_grad", dy, w, "gradient", "weight");
  return differentiable("conv2d_input_grad", {dy, w},
      [&] {
        const Tensor dc = contiguous(dy), wc = contiguous(w);
        Tensor dx = Tensor::empty(x_shape, dy.dtype(), dy.device());
        backend_for(dy.device()).conv2d_backward_input(dy.dtype(), dc.raw_data(), wc.raw_data(), dx.raw_data(), s);
        return dx;
      },
      [dy, w, a](const Tensor& gg) {
        return Grads{dy.requires_grad() ? conv2d(gg, w, Tensor(), a) : Tensor(),
                     w.requires_grad() ? conv2d_weight_grad(gg, dy, w.shape(), a) : Tensor()};
      },
      [dy, w, x_shape, a](const Tangents& t) {
        return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return conv2d_input_grad(v, w, x_shape, a); }),
                            if_tangent(t[1], [&](const Tensor& v) { return conv2d_input_grad(dy, v, x_shape, a); })});
      },
      {dy, w});
}

// conv2d_weight_grad: dw = sum_n correlation(x, dy), linear in x and in dy.
//   vjp: dx = conv2d_input_grad(dy, gg), d(dy) = conv2d(x, gg)
//   jvp: weight_grad(tx, dy) + weight_grad(x, t_dy)
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& dy, const Shape& w_shape, const Conv2dArgs& a) {
  const kernels::Conv2dShape s = check_conv(x.shape(), w_shape, a);
  check_conv_grad("conv2d_weight_grad", dy, s);
  check_same_dtype("conv2d_weight_grad", x, dy, "input", "gradient");
  check_same_device("conv2d_weight_grad", x, dy, "input", "gradient");
  return differentiable("conv2d_weight_grad", {x, dy},
      [&] {
        const Tensor xc = contiguous(x), dc = contiguous(dy);
        Tensor dw = Tensor::empty(w_shape, x.dtype(), x.device());
        backend_for(x.device()).conv2d_backward_weight(x.dtype(), xc.raw_data(), dc.raw_data(), dw.raw_data(), s);
        return dw;
      },
      [x, dy, a](const Tensor& gg) {
        return Grads{x.requires_grad() ? conv2d_input_grad(dy, gg, x.shape(), a) : Tensor(),
                     dy.requires_grad() ? conv2d(x, gg, Tensor(), a) : Tensor()};
      },
      [x, dy, w_shape, a](const Tangents& t) {
        return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return conv2d_weight_grad(v, dy, w_shape, a); }),
                            if_tangent(t[1], [&](const Tensor& v) { return conv2d_weight_grad(x, v, w_shape, a); })});
      },
      {x, dy});
}

// ---------------- pooling ----------------

namespace {

int64_t pool_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // with ceil_mode the last window must start inside the input or the left padding
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

kernels::Pool2dShape check_pool(const char* op, const Shape& xs, const Pool2dArgs& a) {
  DLCORE_CHECK(xs.size() == 4, ValueError, op, ": expected input of shape (N, C, H, W) or (C, H, W), got ",
               shape_str(xs));
  DLCORE_CHECK(a.kh > 0 && a.kw > 0, ValueError, op, ": kernel size must be positive, got (", a.kh, ", ", a.kw, ")");
  DLCORE_CHECK(a.stride_h > 0 && a.stride_w > 0, ValueError, op, ": stride must be positive, got (", a.stride_h,
               ", ", a.stride_w, ")");
  DLCORE_CHECK(a.dil_h > 0 && a.dil_w > 0, ValueError, op, ": dilation must be positive");
  DLCORE_CHECK(a.pad_h >= 0 && a.pad_w >= 0 && 2 * a.pad_h <= a.kh && 2 * a.pad_w <= a.kw, ValueError, op,
               ": padding (", a.pad_h, ", ", a.pad_w, ") must be non-negative and at most half the kernel size (",
               a.kh, ", ", a.kw, ")");
  const int64_t eff_r = a.dil_h * (a.kh - 1) + 1, eff_s = a.dil_w * (a.kw - 1) + 1;
  DLCORE_CHECK(eff_r <= xs[2] + 2 * a.pad_h && eff_s <= xs[3] + 2 * a.pad_w, ValueError, op, ": kernel size ",
               eff_r, "x", eff_s, " is larger than the padded input ", xs[2] + 2 * a.pad_h, "x",
               xs[3] + 2 * a.pad_w, " (input shape ", shape_str(xs), ")");
  kernels::Pool2dShape s{};
  s.planes = xs[0] * xs[1];
  s.H = xs[2];
  s.W = xs[3];
  s.R = a.kh;
  s.S = a.kw;
  s.stride_h = a.stride_h;
  s.stride_w = a.stride_w;
  s.pad_h = a.pad_h;
  s.pad_w = a.pad_w;
  s.dil_h = a.dil_h;
  s.dil_w = a.dil_w;
  s.P = pool_out(s.H, a.kh, a.stride_h, a.pad_h, a.dil_h, a.ceil_mode);
  s.Q = pool_out(s.W, a.kw, a.stride_w, a.pad_w, a.dil_w, a.ceil_mode);
  return s;
}

// scatter: dx (x-shaped) = 0; dx[idx] += g.   vjp: gather(gg).   jvp: scatter(t)
Tensor pool_scatter(const Tensor& g, const Tensor& idx, const Shape& x_shape, const kernels::Pool2dShape& s);
// gather: y = x[idx].   vjp: scatter(gg).   jvp: gather(t)
Tensor pool_gather(const Tensor& x, const Tensor& idx, const kernels::Pool2dShape& s) {
  return differentiable("max_pool2d_gather", {x},
      [&] {
        const Tensor xc = contiguous(x);
        Tensor y = Tensor::empty(idx.shape(), x.dtype(), x.device());
        backend_for(x.device()).pool_gather(x.dtype(), xc.raw_data(), idx.data<int64_t>(), y.raw_data(), s);
        return y;
      },
      [idx, s, xs = x.shape()](const Tensor& gg) { return Grads{pool_scatter(gg, idx, xs, s)}; },
      [idx, s](const Tangents& t) { return pool_gather(t[0], idx, s); });
}

Tensor pool_scatter(const Tensor& g, const Tensor& idx, const Shape& x_shape, const kernels::Pool2dShape& s) {
  return differentiable("max_pool2d_scatter", {g},
      [&] {
        const Tensor gc = contiguous(g);
        Tensor dx = Tensor::empty(x_shape, g.dtype(), g.device());
        backend_for(g.device()).max_pool2d_backward(g.dtype(), gc.raw_data(), idx.data<int64_t>(), dx.raw_data(), s);
        return dx;
      },
      [idx, s](const Tensor& gg) { return Grads{pool_gather(gg, idx, s)}; },
      [idx, x_shape, s](const Tangents& t) { return pool_scatter(t[0], idx, x_shape, s); });
}

}  // namespace

// max_pool2d: y = max over each window; the gradient routes to the arg-max.
//   vjp: scatter(g, argmax).   jvp: gather(t, argmax)
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x_in, const Pool2dArgs& a) {
  check_float("max_pool2d", x_in, "input");
  const bool unbatched = x_in.dim() == 3;
  const Tensor x = unbatched ? unsqueeze(x_in, 0) : x_in;
  const kernels::Pool2dShape s = check_pool("max_pool2d", x.shape(), a);
  const Shape out_shape{x.shape()[0], x.shape()[1], s.P, s.Q};
  Tensor idx = Tensor::empty(out_shape, DType::Int64, x.device());
  Tensor y = differentiable("max_pool2d", {x},
      [&] {
        const Tensor xc = contiguous(x);
        Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
        backend_for(x.device()).max_pool2d_forward(x.dtype(), xc.raw_data(), out.raw_data(), idx.data<int64_t>(), s);
        return out;
      },
      [idx, s, xs = x.shape()](const Tensor& g) { return Grads{pool_scatter(g, idx, xs, s)}; },
      [idx, s](const Tangents& t) { return pool_gather(t[0], idx, s); });
  // The user gets a copy of the indices: the backward keeps its own, which nothing can modify.
  Tensor user_idx = clone(idx);
  if (unbatched) return {squeeze(y, std::vector<int64_t>{0}), squeeze(user_idx, std::vector<int64_t>{0})};
  return {y, user_idx};
}

Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a) { return max_pool2d_with_indices(x, a).first; }

namespace {
// avg_pool2d_backward: spreads each gradient over its window (linear).
//   vjp: avg_pool2d(gg).   jvp: avg_pool2d_backward(t)
Tensor avg_pool_forward(const Tensor& x, const kernels::Pool2dShape& s, bool cip);
Tensor avg_pool_backward(const Tensor& g, const Shape& x_shape, const kernels::Pool2dShape& s, bool cip) {
  return differentiable("avg_pool2d_backward", {g},
      [&] {
        const Tensor gc = contiguous(g);
        Tensor dx = Tensor::empty(x_shape, g.dtype(), g.device());
        backend_for(g.device()).avg_pool2d_backward(g.dtype(), gc.raw_data(), dx.raw_data(), s, cip);
        return dx;
      },
      [s, cip](const Tensor& gg) { return Grads{avg_pool_forward(gg, s, cip)}; },
      [x_shape, s, cip](const Tangents& t) { return avg_pool_backward(t[0], x_shape, s, cip); });
}

// avg_pool2d: y = mean over each window.   vjp: avg_pool2d_backward(g).   jvp: avg_pool2d(t)
Tensor avg_pool_forward(const Tensor& x, const kernels::Pool2dShape& s, bool cip) {
  return differentiable("avg_pool2d", {x},
      [&] {
        const Tensor xc = contiguous(x);
        Tensor y = Tensor::empty({x.shape()[0], x.shape()[1], s.P, s.Q}, x.dtype(), x.device());
        backend_for(x.device()).avg_pool2d_forward(x.dtype(), xc.raw_data(), y.raw_data(), s, cip);
        return y;
      },
      [s, cip, xs = x.shape()](const Tensor& g) { return Grads{avg_pool_backward(g, xs, s, cip)}; },
      [s, cip](const Tangents& t) { return avg_pool_forward(t[0], s, cip); });
}
}  // namespace

Tensor avg_pool2d(const Tensor& x_in, const Pool2dArgs& a, bool count_include_pad) {
  check_float("avg_pool2d", x_in, "input");
  const bool unbatched = x_in.dim() == 3;
  const Tensor x = unbatched ? unsqueeze(x_in, 0) : x_in;
  const kernels::Pool2dShape s = check_pool("avg_pool2d", x.shape(), a);
  Tensor y = avg_pool_forward(x, s, count_include_pad);
  return unbatched ? squeeze(y, std::vector<int64_t>{0}) : y;
}

// ---------------- softmax ----------------

namespace {
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  check_float(log ? "log_softmax" : "softmax", x, "input");
  const int64_t d = normalize_dim(dim, x.dim());
  const Tensor xc = contiguous(x);
  const int64_t outer = dims_product(x.shape(), 0, d), C = x.dim() == 0 ? 1 : x.shape()[d],
                inner = dims_product(x.shape(), d + 1, x.dim());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).softmax(x.dtype(), xc.raw_data(), y.raw_data(), outer, C, inner, log);
  return y;
}
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
}  // namespace

// softmax: s = exp(x - lse).   vjp: s * (g - sum(g * s)).   jvp: s * (t - sum(t * s))
// s is recomputed from x with the differentiable op, so double backward works.
Tensor softmax(const Tensor& x, int64_t dim) {
  return differentiable("softmax", {x}, [&] { return softmax_impl(x, dim, false); },
      [x, dim](const Tensor& g) {
        const Tensor s = softmax(x, dim);
        return Grads{mul(s, sub(g, sum(mul(g, s), {dim}, true)))};
      },
      [x, dim](const Tangents& t) {
        const Tensor s = softmax(x, dim);
        return mul(s, sub(t[0], sum(mul(t[0], s), {dim}, true)));
      }, {x});
}

// log_softmax: x - lse.   vjp: g - softmax(x) * sum(g).   jvp: t - sum(softmax(x) * t)
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return differentiable("log_softmax", {x}, [&] { return softmax_impl(x, dim, true); },
      [x, dim](const Tensor& g) { return Grads{sub(g, mul(softmax(x, dim), sum(g, {dim}, true)))}; },
      [x, dim](const Tangents& t) { return sub(t[0], sum(mul(softmax(x, dim), t[0]), {dim}, true)); }, {x});
}

// ---------------- losses ----------------

Reduction parse_reduction(const std::string& s) {
  if (s == "mean") return Reduction::Mean;
  if (s == "sum") return Reduction::Sum;
  if (s == "none") return Reduction::None;
  throw ValueError(str("reduction must be 'mean', 'sum' or 'none', got '", s, "'"));
}

namespace {

Tensor reduce_loss(const Tensor& per_row, Reduction r) {
  if (r == Reduction::Sum) return sum(per_row, {}, false);
  if (r == Reduction::Mean) return mean(per_row, {}, false);
  return per_row;
}

// Brings (N, C, d1, ...) logits and (N, d1, ...) targets to (M, C) and (M,);
// (C,) with a 0-d target to (1, C) and (1,). Checks dtypes, shapes and labels.
struct Flat {
  Tensor x, t;
  Shape per_row_shape;  // shape of the 'none' reduction
};

Flat flatten_class_input(const char* op, const Tensor& x, const Tensor& t) {
  check_float(op, x, "input");
  DLCORE_CHECK(t.dtype() == DType::Int64, TypeError, op, ": targets must be int64 class indices, got dtype ",
               dtype_name(t.dtype()), is_floating(t.dtype()) ? " (convert with .long())" : "");
  DLCORE_CHECK(x.device() == t.device(), ValueError, op, ": input is on ", x.device().str(), " but targets are on ",
               t.device().str(), "; move both to one device with .to()");
  Flat f;
  if (x.dim() == 1) {
    DLCORE_CHECK(t.dim() == 0, ValueError, op, ": for input of shape ", shape_str(x.shape()),
                 " (one example) the target must be a 0-d tensor, got shape ", shape_str(t.shape()));
    f.x = unsqueeze(x, 0);
    f.t = reshape(t, {1});
  } else {
    DLCORE_CHECK(x.dim() >= 2, ValueError, op, ": expected input of shape (N, C), got ", shape_str(x.shape()));
    Shape expect_t(x.shape());
    expect_t.erase(expect_t.begin() + 1);
    DLCORE_CHECK(t.shape() == expect_t, ValueError, op, ": input of shape ", shape_str(x.shape()),
                 " needs targets of shape ", shape_str(expect_t), ", got ", shape_str(t.shape()));
    f.per_row_shape = expect_t;
    if (x.dim() == 2) {
      f.x = x;
      f.t = t;
    } else {  // (N, C, d...) -> (N*d..., C)
      std::vector<int64_t> perm{0};
      for (int64_t d = 2; d < x.dim(); ++d) perm.push_back(d);
      perm.push_back(1);
      f.x = reshape(permute(x, perm), {-1, x.shape()[1]});
      f.t = reshape(t, {-1});
    }
  }
  f.t = contiguous(f.t);
  const int64_t C = f.x.shape()[1], M = f.t.numel();
  DLCORE_CHECK(C > 0, ValueError, op, ": input of shape ", shape_str(x.shape()), " has no classes");
  // Labels copied from the host carry their range (to_device): then nothing comes back.
  const auto& range = t.storage()->int_range();
  if (t.dtype() == DType::Int64 && range && range->first >= 0 && range->second < C) return f;
  const Tensor th = on_host(f.t);  // labels are checked on the host
  const int64_t* tp = th.data<int64_t>();
  for (int64_t i = 0; i < M; ++i)
    DLCORE_CHECK(tp[i] >= 0 && tp[i] < C, IndexError, op, ": target ", tp[i], " (example ", i,
                 ") is out of range for ", C, " classes (expected 0 <= target < ", C, ")");
  return f;
}

// One-hot (M, C) of int64 targets (M,), as dtype dt.
Tensor one_hot(const Tensor& t, int64_t C, DType dt) {
  const Tensor pos = arange(0, static_cast<double>(C), 1, DType::Int64, t.device());
  return to_dtype(binary(BinaryOp::Eq, unsqueeze(t, 1), pos), dt);
}

// Target distribution of label-smoothed cross-entropy: (1-e) onehot + e/C.
Tensor target_dist(const Tensor& t, int64_t C, double e, DType dt) {
  Tensor oh = one_hot(t, C, dt);
  if (e == 0.0) return oh;
  return binary_scalar(BinaryOp::Add, binary_scalar(BinaryOp::Mul, oh, 1.0 - e, ScalarKind::Float, false),
                       e / static_cast<double>(C), ScalarKind::Float, false);
}

// Per-row cross-entropy (M,) of logits (M, C).
//   vjp: dx = g[:, None] * (softmax(x) - dist): the fused kernel, or the same
//        formula with differentiable ops when the backward is itself recorded.
//   jvp: sum((softmax(x) - dist) * t, 1)
Tensor cross_entropy_rows(const Tensor& x, const Tensor& t, double e) {
  const int64_t M = x.shape()[0], C = x.shape()[1];
  // Each row's log-sum-exp, from the forward kernel, kept for the fused backward.
  Tensor lse = Tensor::empty({M}, x.dtype(), x.device());
  return differentiable("cross_entropy", {x},
      [&] {
        const Tensor xc = contiguous(x);
        Tensor loss = Tensor::empty({M}, x.dtype(), x.device());
        backend_for(x.device()).cross_entropy_forward(x.dtype(), xc.raw_data(), t.data<int64_t>(), loss.raw_data(), lse.raw_data(), M, C, e);
        return loss;
      },
      [x, t, e, M, C, lse](const Tensor& g) {
        if (grad_enabled())  // create_graph: keep the backward differentiable
          return Grads{mul(unsqueeze(g, 1), sub(softmax(x, 1), target_dist(t, C, e, x.dtype())))};
        const Tensor xc = contiguous(x), gc = contiguous(to_dtype(g, x.dtype()));
        Tensor dx = Tensor::empty({M, C}, x.dtype(), x.device());
        backend_for(x.device()).cross_entropy_backward(x.dtype(), xc.raw_data(), t.data<int64_t>(), gc.raw_data(), lse.raw_data(), dx.raw_data(), M, C, e);
        return Grads{dx};
      },
      [x, t, e, C](const Tangents& tg) {
        return sum(mul(sub(softmax(x, 1), target_dist(t, C, e, x.dtype())), tg[0]), {1}, false);
      }, {x});
}

// Per-row multiclass margin loss (M,) of scores (M, C). The forward is one
// kernel shared by the hinge and multi-margin losses; the VJP is written with
// differentiable ops:
//   v = s - s_y + margin, a = [v > 0] * [j != y],  c = a (p = 1) or 2 v a (p = 2)
//   ds = (c - onehot * sum_j c) * g / (C if mean_over_classes)
Tensor margin_coef(const Tensor& s, const Tensor& t, int p, double margin, bool mean_over_classes) {
  const int64_t C = s.shape()[1];
  const Tensor oh = one_hot(t, C, s.dtype());
  const Tensor sy = sum(mul(s, oh), {1}, true);
  const Tensor v = binary_scalar(BinaryOp::Add, sub(s, sy), margin, ScalarKind::Float, false);
  const Tensor not_y = binary_scalar(BinaryOp::Sub, oh, 1.0, ScalarKind::Float, true);
  const Tensor active = mul(to_dtype(binary_scalar(BinaryOp::Gt, v, 0.0, ScalarKind::Float, false), s.dtype()), not_y);
  Tensor c = p == 1 ? active : binary_scalar(BinaryOp::Mul, mul(v, active), 2.0, ScalarKind::Float, false);
  Tensor ds = sub(c, mul(oh, sum(c, {1}, true)));
  if (mean_over_classes) ds = binary_scalar(BinaryOp::Div, ds, static_cast<double>(C), ScalarKind::Float, false);
  return ds;
}

Tensor margin_rows(const Tensor& s, const Tensor& t, int p, double margin, bool mean_over_classes) {
  const int64_t M = s.shape()[0], C = s.shape()[1];
  return differentiable("multi_margin", {s},
      [&] {
        const Tensor sc = contiguous(s);
        Tensor loss = Tensor::empty({M}, s.dtype(), s.device());
        backend_for(s.device()).multi_margin_forward(s.dtype(), sc.raw_data(), t.data<int64_t>(), loss.raw_data(), M, C, p, margin, mean_over_classes);
        return loss;
      },
      [s, t, p, margin, mean_over_classes](const Tensor& g) {
        return Grads{mul(unsqueeze(g, 1), margin_coef(s, t, p, margin, mean_over_classes))};
      },
      [s, t, p, margin, mean_over_classes](const Tangents& tg) {
        return sum(mul(margin_coef(s, t, p, margin, mean_over_classes), tg[0]), {1}, false);
      }, {s});
}

Tensor unflatten_rows(const Tensor& per_row, const Flat& f) {
  return f.per_row_shape.empty() ? reshape(per_row, {}) : reshape(per_row, f.per_row_shape);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r, double label_smoothing) {
  DLCORE_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, ValueError,
               "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  const Flat f = flatten_class_input("cross_entropy", logits, targets);
  return reduce_loss(unflatten_rows(cross_entropy_rows(f.x, f.t, label_smoothing), f), r);
}

// nll_loss: -log_probs[i, t_i], composed of differentiable ops (where + sum).
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r) {
  const Flat f = flatten_class_input("nll_loss", log_probs, targets);
  // select (not multiply) the target entries: other entries may be -inf
  const Tensor mask = one_hot(f.t, f.x.shape()[1], DType::Bool);
  const Tensor picked = sum(where(mask, f.x, zeros({}, f.x.dtype(), f.x.device())), {1}, false);
  return reduce_loss(unflatten_rows(unary(UnaryOp::Neg, picked), f), r);
}

Tensor multi_margin(const Tensor& scores, const Tensor& targets, int p, double margin, bool mean_over_classes,
                    Reduction r) {
  DLCORE_CHECK(p == 1 || p == 2, ValueError, "multi_margin_loss: p must be 1 or 2, got ", p);
  const Flat f = flatten_class_input(mean_over_classes ? "multi_margin_loss" : "multiclass_hinge_loss", scores,
                                     targets);
  return reduce_loss(unflatten_rows(margin_rows(f.x, f.t, p, margin, mean_over_classes), f), r);
}

}  // namespace dlcore
