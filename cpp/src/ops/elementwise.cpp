// Elementwise ops with numpy broadcasting and the promotion rule of
// Note [Type promotion].
#include <cmath>
#include <type_traits>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"

namespace dlcore {

const char* binary_op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return names[static_cast<int>(op)];
}
const char* unary_op_name(UnaryOp op) {
  static const char* names[] = {"neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu"};
  return names[static_cast<int>(op)];
}

namespace {

// The dtype an op computes in, from the promoted input dtype.
DType compute_dtype(BinaryOp op, DType common) {
  if (is_comparison(op)) return common;
  if (op == BinaryOp::Div) return is_floating(common) ? common : DType::Float32;
  return common == DType::Bool ? DType::Int64 : common;
}

void check_int_pow(BinaryOp op, const Tensor& exponent) {
  if (op != BinaryOp::Pow || exponent.dtype() != DType::Int64 || exponent.numel() == 0) return;
  const int64_t v = static_cast<int64_t>(item(amin(exponent, {}, false)));
  DLCORE_CHECK(v >= 0, ValueError, "pow: integers to negative integer powers are not allowed (exponent ", v,
               "); use a float tensor");
}

// x moved to `other`'s device when x is a 0-d host tensor and `other` lives elsewhere.
Tensor scalar_to(const Tensor& x, const Tensor& other) {
  if (x.dim() == 0 && x.device().type == DeviceType::CPU && other.device().type != DeviceType::CPU)
    return to_device(x, other.device());
  return x;
}

void check_same_device(const char* name, const Tensor& a, const Tensor& b) {
  DLCORE_CHECK(a.device() == b.device(), ValueError, name, ": expected tensors on the same device, got ",
               a.device().str(), " and ", b.device().str());
}

// out = a (op) b where a, b already have dtype `ct`; `out` has the final shape.
void binary_into(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  Backend& be = backend_for(out.device());
  // Fast path (most calls): contiguous operands of the output's shape or single values.
  const bool a_scalar = a.numel() == 1, b_scalar = b.numel() == 1;
  if (out.is_contiguous() && (a_scalar || (a.is_contiguous() && a.shape() == out.shape())) &&
      (b_scalar || (b.is_contiguous() && b.shape() == out.shape()))) {
    const int64_t n = out.numel();
    be.binary_flat(op, a.dtype(), n, a.raw_data(), a_scalar && n != 1, b.raw_data(), b_scalar && n != 1,
                   out.raw_data());
    return;
  }
  Shape shape = out.shape();
  Shape sa = broadcast_strides(a.shape(), a.strides(), shape);
  Shape sb = broadcast_strides(b.shape(), b.strides(), shape);
  Shape so = out.strides();
  coalesce_dims(shape, {&sa, &sb, &so});
  be.binary(op, a.dtype(), shape, a.raw_data(), sa.data(), b.raw_data(), sb.data(), out.raw_data(), so.data());
}

}  // namespace

Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b) {
  check_same_device(binary_op_name(op), a, b);
  const DType ct = compute_dtype(op, promote(a.dtype(), b.dtype()));
  Shape shape;
  try {
    shape = broadcast_shapes(a.shape(), b.shape());
  } catch (const ValueError& e) {
    throw ValueError(str(binary_op_name(op), ": ", e.what()));
  }
  const Tensor ac = to_dtype(a, ct), bc = to_dtype(b, ct);
  check_int_pow(op, bc);
  Tensor out = Tensor::empty(shape, is_comparison(op) ? DType::Bool : ct, a.device());
  binary_into(op, ac, bc, out);
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, ScalarKind kind, bool reflected) {
  const Tensor st = scalar_tensor(s, promote_with_scalar(a.dtype(), kind), a.device());
  return reflected ? binary(op, st, a) : binary(op, a, st);
}

void binary_(BinaryOp op, const Tensor& a, const Tensor& b_in) {
  const Tensor b = scalar_to(b_in, a);
  check_same_device(binary_op_name(op), a, b);
  if (detail::any_requires_grad({a, b}) || detail::any_tangent({a, b})) {
    // In-place with history: compute out of place from a snapshot of `a`, then
    // write the values back and move a's history onto the new node.
    check_inplace(a, binary_op_name(op));
    const Tensor r = binary(op, clone(a), b);
    DLCORE_CHECK(r.dtype() == a.dtype() && r.shape() == a.shape(), TypeError, "in-place ", binary_op_name(op),
                 ": result of dtype ", dtype_name(r.dtype()), " and shape ", shape_str(r.shape()),
                 " cannot be stored in a tensor of dtype ", dtype_name(a.dtype()), " and shape ",
                 shape_str(a.shape()));
    rebase_history(a, r);
    return;
  }
  DLCORE_CHECK(!is_comparison(op), TypeError, binary_op_name(op), " has no in-place form");
  const DType ct = compute_dtype(op, promote(a.dtype(), b.dtype()));
  DLCORE_CHECK(ct == a.dtype(), TypeError, "in-place ", binary_op_name(op), ": result type ", dtype_name(ct),
               " cannot be stored in a tensor of dtype ", dtype_name(a.dtype()));
  const Shape bs = broadcast_shapes(a.shape(), b.shape());
  DLCORE_CHECK(bs == a.shape(), ValueError, "in-place ", binary_op_name(op), ": operand of shape ",
               shape_str(b.shape()), " does not broadcast to the output shape ", shape_str(a.shape()));
  for (int64_t d = 0; d < a.dim(); ++d)
    DLCORE_CHECK(a.strides()[d] != 0 || a.shape()[d] <= 1, RuntimeError, "in-place ", binary_op_name(op),
                 ": the tensor of shape ", shape_str(a.shape()),
                 " is an expanded view (several elements share one memory location); clone() it first");
  Tensor bc = to_dtype(b, ct);
  if (bc.storage() == a.storage() && !(bc.offset() == a.offset() && bc.strides() == a.strides()))
    bc = clone(bc);
  check_int_pow(op, bc);
  binary_into(op, a, bc, a);
  a.storage()->bump_version();
}

Tensor unary_raw(UnaryOp op, const Tensor& x_in) {
  const bool keeps_int = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu;
  DLCORE_CHECK(!(x_in.dtype() == DType::Bool && keeps_int), TypeError, unary_op_name(op),
               ": not supported for bool tensors");
  const DType dt = keeps_int ? x_in.dtype() : (is_floating(x_in.dtype()) ? x_in.dtype() : DType::Float32);
  const Tensor x = to_dtype(x_in, dt);
  Tensor out = Tensor::empty(x.shape(), dt, x.device());
  if (x.numel() == 0) return out;
  if (x.is_contiguous()) {  // the common case: one flat run, no coalescing
    const Shape flat{x.numel()};
    const int64_t unit = 1;
    backend_for(x.device()).unary(op, dt, flat, x.raw_data(), &unit, out.raw_data(), &unit);
    return out;
  }
  Shape shape = x.shape(), sx = x.strides(), so = out.strides();
  coalesce_dims(shape, {&sx, &so});
  backend_for(x.device()).unary(op, dt, shape, x.raw_data(), sx.data(), out.raw_data(), so.data());
  return out;
}

Tensor where_raw(const Tensor& cond_in, const Tensor& a_in, const Tensor& b_in) {
  check_same_device("where", a_in, b_in);
  check_same_device("where", cond_in, a_in);
  const Tensor cond = cond_in.dtype() == DType::Bool ? cond_in : binary_scalar(BinaryOp::Ne, cond_in, 0.0, ScalarKind::Int, false);
  const DType dt = promote(a_in.dtype(), b_in.dtype());
  const Tensor a = to_dtype(a_in, dt), b = to_dtype(b_in, dt);
  Shape shape;
  try {
    shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape()), b.shape());
  } catch (const ValueError&) {
    throw ValueError(str("where: shapes ", shape_str(cond.shape()), " (condition), ", shape_str(a.shape()), " and ",
                         shape_str(b.shape()), " cannot be broadcast together"));
  }
  Tensor out = Tensor::empty(shape, dt, a.device());
  Shape sh = shape;
  Shape sc = broadcast_strides(cond.shape(), cond.strides(), shape);
  Shape sa = broadcast_strides(a.shape(), a.strides(), shape);
  Shape sb = broadcast_strides(b.shape(), b.strides(), shape);
  Shape so = out.strides();
  coalesce_dims(sh, {&sc, &sa, &sb, &so});
  backend_for(out.device()).where(dt, sh, cond.data<bool>(), sc.data(), a.raw_data(), sa.data(), b.raw_data(),
                                  sb.data(), out.raw_data(), so.data());
  return out;
}

}  // namespace dlcore

// ===================== differentiable ops =====================
// Each op: forward (the raw kernel above), then its VJP and JVP, written with
// differentiable ops (Note [One definition per op]).
namespace dlcore {

namespace {
RegisterOp reg_add("add"), reg_sub("sub"), reg_mul("mul"), reg_div("div"), reg_pow("pow"), reg_maximum("maximum"),
    reg_minimum("minimum"), reg_neg("neg"), reg_abs("abs"), reg_exp("exp"), reg_log("log"), reg_sqrt("sqrt"),
    reg_sin("sin"), reg_cos("cos"), reg_tanh("tanh"), reg_sigmoid("sigmoid"), reg_relu("relu"), reg_where("where");

Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Mul, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Sub, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::Div, a, b); }
Tensor as_float(const Tensor& mask, DType dt) { return to_dtype(mask, dt); }

// d max(a, b)/da: 1 where a > b, 1/2 where equal (PyTorch's rule), 0 elsewhere.
Tensor maximum_mask(const Tensor& a, const Tensor& b, bool is_max, DType dt) {
  const Tensor gt = as_float(binary_raw(is_max ? BinaryOp::Gt : BinaryOp::Lt, a, b), dt);
  const Tensor eq = as_float(binary_raw(BinaryOp::Eq, a, b), dt);
  return binary_raw(BinaryOp::Add, gt, binary_scalar(BinaryOp::Mul, eq, 0.5, ScalarKind::Float, false));
}
}  // namespace

Tensor binary(BinaryOp op, const Tensor& a_in, const Tensor& b_in) {
  // A 0-d host tensor joins a device tensor as a scalar would (as in PyTorch).
  const Tensor a = scalar_to(a_in, b_in), b = scalar_to(b_in, a_in);
  if (op >= BinaryOp::Eq) return binary_raw(op, a, b);  // comparisons: not differentiable
  const char* name = binary_op_name(op);
  auto fwd = [&] { return binary_raw(op, a, b); };
  const Shape as = a.shape(), bs = b.shape();
  switch (op) {
    // add: out = a + b.   vjp: da = sum_to(g), db = sum_to(g).   jvp: ta + tb
    case BinaryOp::Add:
      return differentiable(name, {a, b}, fwd,
          [as, bs](const Tensor& g) { return std::vector<Tensor>{sum_to(g, as), sum_to(g, bs)}; },
          [](const std::vector<Tensor>& t) { return tangent_sum({t[0], t[1]}); });
    // sub: out = a - b.   vjp: da = sum_to(g), db = -sum_to(g).   jvp: ta - tb
    case BinaryOp::Sub:
      return differentiable(name, {a, b}, fwd,
          [as, bs](const Tensor& g) { return std::vector<Tensor>{sum_to(g, as), unary(UnaryOp::Neg, sum_to(g, bs))}; },
          [](const std::vector<Tensor>& t) {
            return tangent_sum({t[0], if_tangent(t[1], [](const Tensor& v) { return unary(UnaryOp::Neg, v); })});
          });
    // mul: out = a * b.   vjp: da = sum_to(g*b), db = sum_to(g*a).   jvp: ta*b + a*tb
    case BinaryOp::Mul:
      return differentiable(name, {a, b}, fwd,
          [a, b](const Tensor& g) {
            return std::vector<Tensor>{a.requires_grad() ? sum_to(mul(g, b), a.shape()) : Tensor(),
                                       b.requires_grad() ? sum_to(mul(g, a), b.shape()) : Tensor()};
          },
          [a, b](const std::vector<Tensor>& t) {
            return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return mul(v, b); }),
                                if_tangent(t[1], [&](const Tensor& v) { return mul(a, v); })});
          }, {a, b});
    // div: out = a / b.   vjp: da = sum_to(g/b), db = sum_to(-g*a/b^2).   jvp: ta/b - a*tb/b^2
    case BinaryOp::Div:
      return differentiable(name, {a, b}, fwd,
          [a, b](const Tensor& g) {
            return std::vector<Tensor>{
                a.requires_grad() ? sum_to(div(g, b), a.shape()) : Tensor(),
                b.requires_grad() ? sum_to(unary(UnaryOp::Neg, div(mul(g, a), mul(b, b))), b.shape()) : Tensor()};
          },
          [a, b](const std::vector<Tensor>& t) {
            return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return div(v, b); }),
                                if_tangent(t[1], [&](const Tensor& v) { return unary(UnaryOp::Neg, div(mul(a, v), mul(b, b))); })});
          }, {a, b});
    // pow: out = a^b.   vjp: da = sum_to(g*b*a^(b-1)), db = sum_to(g*a^b*log a) (0 where a == 0).
    //   jvp: ta*b*a^(b-1) + tb*a^b*log a
    case BinaryOp::Pow: {
      auto da_factor = [](const Tensor& a, const Tensor& b) {  // b * a^(b-1), 0 where b == 0 (no 0 * inf)
        const Tensor f = mul(b, binary(BinaryOp::Pow, a, binary_scalar(BinaryOp::Sub, b, 1.0, ScalarKind::Float, false)));
        return where(binary_scalar(BinaryOp::Eq, b, 0.0, ScalarKind::Float, false), zeros({}, f.dtype(), f.device()), f);
      };
      auto db_factor = [](const Tensor& a, const Tensor& b) {
        const Tensor zero_base = binary_scalar(BinaryOp::Eq, a, 0.0, ScalarKind::Float, false);
        const Tensor v = mul(binary(BinaryOp::Pow, a, b), unary(UnaryOp::Log, a));
        return where(zero_base, zeros({}, v.dtype(), v.device()), v);
      };
      return differentiable(name, {a, b}, fwd,
          [a, b, da_factor, db_factor](const Tensor& g) {
            return std::vector<Tensor>{a.requires_grad() ? sum_to(mul(g, da_factor(a, b)), a.shape()) : Tensor(),
                                       b.requires_grad() ? sum_to(mul(g, db_factor(a, b)), b.shape()) : Tensor()};
          },
          [a, b, da_factor, db_factor](const std::vector<Tensor>& t) {
            return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return mul(v, da_factor(a, b)); }),
                                if_tangent(t[1], [&](const Tensor& v) { return mul(v, db_factor(a, b)); })});
          }, {a, b});
    }
    // maximum/minimum: the gradient goes to the larger (smaller) operand, split evenly on ties.
    case BinaryOp::Maximum:
    case BinaryOp::Minimum: {
      const bool is_max = op == BinaryOp::Maximum;
      return differentiable(name, {a, b}, fwd,
          [a, b, is_max](const Tensor& g) {
            const Tensor m = maximum_mask(a, b, is_max, g.dtype());
            const Tensor rest = binary_scalar(BinaryOp::Sub, m, 1.0, ScalarKind::Float, true);
            return std::vector<Tensor>{a.requires_grad() ? sum_to(mul(g, m), a.shape()) : Tensor(),
                                       b.requires_grad() ? sum_to(mul(g, rest), b.shape()) : Tensor()};
          },
          [a, b, is_max](const std::vector<Tensor>& t) {
            const Tensor m = maximum_mask(a, b, is_max, a.dtype());
            return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return mul(v, m); }),
                                if_tangent(t[1], [&](const Tensor& v) {
                                  return mul(v, binary_scalar(BinaryOp::Sub, m, 1.0, ScalarKind::Float, true));
                                })});
          }, {a, b});
    }
    default: break;
  }
  return binary_raw(op, a, b);
}

// Unary ops: out = f(x).   vjp: dx = g * f'(x).   jvp: tx * f'(x)
// f' is written with differentiable ops, recomputed from x (no saved output, so no cycle).
namespace {
Tensor unary_derivative(UnaryOp op, const Tensor& x) {
  const DType dt = x.dtype();
  switch (op) {
    case UnaryOp::Neg: return full({}, -1.0, dt, x.device());
    case UnaryOp::Abs:  // sign(x), 0 at 0
      return sub(as_float(binary_scalar(BinaryOp::Gt, x, 0.0, ScalarKind::Float, false), dt),
                 as_float(binary_scalar(BinaryOp::Lt, x, 0.0, ScalarKind::Float, false), dt));
    case UnaryOp::Exp: return unary(UnaryOp::Exp, x);
    case UnaryOp::Log: return binary_scalar(BinaryOp::Div, x, 1.0, ScalarKind::Float, true);
    case UnaryOp::Sqrt: return binary_scalar(BinaryOp::Div, unary(UnaryOp::Sqrt, x), 0.5, ScalarKind::Float, true);
    case UnaryOp::Sin: return unary(UnaryOp::Cos, x);
    case UnaryOp::Cos: return unary(UnaryOp::Neg, unary(UnaryOp::Sin, x));
    case UnaryOp::Tanh: {
      const Tensor t = unary(UnaryOp::Tanh, x);
      return binary_scalar(BinaryOp::Sub, mul(t, t), 1.0, ScalarKind::Float, true);
    }
    case UnaryOp::Sigmoid: {
      const Tensor s = unary(UnaryOp::Sigmoid, x);
      return mul(s, binary_scalar(BinaryOp::Sub, s, 1.0, ScalarKind::Float, true));
    }
    case UnaryOp::Relu: return as_float(binary_scalar(BinaryOp::Gt, x, 0.0, ScalarKind::Float, false), dt);
  }
  return Tensor();
}
}  // namespace

Tensor unary(UnaryOp op, const Tensor& x) {
  if (!is_floating(x.dtype())) return unary_raw(op, x);
  return differentiable(unary_op_name(op), {x}, [&] { return unary_raw(op, x); },
      [op, x](const Tensor& g) { return std::vector<Tensor>{mul(g, unary_derivative(op, x))}; },
      [op, x](const std::vector<Tensor>& t) { return mul(t[0], unary_derivative(op, x)); }, {x});
}

// where: out = c ? a : b.   vjp: da = sum_to(c ? g : 0), db = sum_to(c ? 0 : g).   jvp: c ? ta : tb
Tensor where(const Tensor& cond_in, const Tensor& a_in, const Tensor& b_in) {
  // 0-d host operands follow the first operand on a device
  const Tensor& on = cond_in.device().type != DeviceType::CPU ? cond_in
                     : a_in.device().type != DeviceType::CPU  ? a_in
                                                              : b_in;
  const Tensor a = scalar_to(a_in, on), b = scalar_to(b_in, on), cond = scalar_to(cond_in, on);
  return differentiable("where", {a, b}, [&] { return where_raw(cond, a, b); },
      [cond, as = a.shape(), bs = b.shape()](const Tensor& g) {
        const Tensor z = zeros({}, g.dtype(), g.device());
        return std::vector<Tensor>{sum_to(where(cond, g, z), as), sum_to(where(cond, z, g), bs)};
      },
      [cond](const std::vector<Tensor>& t) {
        const Tensor& t0 = t[0].defined() ? t[0] : t[1];
        const Tensor z = zeros({}, t0.dtype(), t0.device());
        return where(cond, t[0].defined() ? t[0] : z, t[1].defined() ? t[1] : z);
      });
}

}  // namespace dlcore
