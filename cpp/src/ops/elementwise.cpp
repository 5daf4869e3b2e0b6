// Elementwise ops with numpy broadcasting and the promotion rule of
// Note [Type promotion].
#include <cmath>
#include <type_traits>

#include "dlcore/autograd.h"
#include "dlcore/kernels/elementwise.h"
#include "dlcore/kernels/fastmath.h"
#include "dlcore/ops.h"
#include "dlcore/parallel.h"

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

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

// The dtype an op computes in, from the promoted input dtype.
DType compute_dtype(BinaryOp op, DType common) {
  if (is_comparison(op)) return common;
  if (op == BinaryOp::Div) return is_floating(common) ? common : DType::Float32;
  return common == DType::Bool ? DType::Int64 : common;
}

// int64 arithmetic wraps around (as numpy and PyTorch) instead of being UB.
inline int64_t wrap_add(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }
inline int64_t wrap_sub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
inline int64_t wrap_mul(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); }
inline int64_t ipow(int64_t base, int64_t e) {  // e >= 0, checked by the op
  uint64_t result = 1, b = static_cast<uint64_t>(base);
  while (e > 0) {
    if (e & 1) result *= b;
    b *= b;
    e >>= 1;
  }
  return static_cast<int64_t>(result);
}

template <class T>
T fmaximum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;  // NaN propagates, as numpy.maximum
    if (b != b) return b;
  }
  return a > b ? a : b;
}
template <class T>
T fminimum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return a < b ? a : b;
}

// Calls go(f) with the functor of `op` for operands in dtype T (the one place the
// op -> functor mapping lives; `go` picks the loop: strided or flat).
template <class T, class Go>
void with_binary_functor(BinaryOp op, Go&& go) {
  constexpr bool is_int = std::is_same_v<T, int64_t>;
  switch (op) {
    case BinaryOp::Add:
      if constexpr (is_int) return go([](T x, T y) { return wrap_add(x, y); });
      else return go([](T x, T y) { return T(x + y); });
    case BinaryOp::Sub:
      if constexpr (is_int) return go([](T x, T y) { return wrap_sub(x, y); });
      else return go([](T x, T y) { return T(x - y); });
    case BinaryOp::Mul:
      if constexpr (is_int) return go([](T x, T y) { return wrap_mul(x, y); });
      else return go([](T x, T y) { return T(x * y); });
    case BinaryOp::Div:
      if constexpr (std::is_floating_point_v<T>) return go([](T x, T y) { return T(x / y); });
      break;
    case BinaryOp::Pow:
      if constexpr (is_int) return go([](T x, T y) { return ipow(x, y); });
      else if constexpr (std::is_floating_point_v<T>) return go([](T x, T y) { return T(std::pow(x, y)); });
      break;
    case BinaryOp::Maximum:
      if constexpr (!std::is_same_v<T, bool>) return go([](T x, T y) { return fmaximum(x, y); });
      break;
    case BinaryOp::Minimum:
      if constexpr (!std::is_same_v<T, bool>) return go([](T x, T y) { return fminimum(x, y); });
      break;
    case BinaryOp::Eq: return go([](T x, T y) { return x == y; });
    case BinaryOp::Ne: return go([](T x, T y) { return x != y; });
    case BinaryOp::Lt: return go([](T x, T y) { return x < y; });
    case BinaryOp::Le: return go([](T x, T y) { return x <= y; });
    case BinaryOp::Gt: return go([](T x, T y) { return x > y; });
    case BinaryOp::Ge: return go([](T x, T y) { return x >= y; });
  }
  throw TypeError(str(binary_op_name(op), ": unsupported dtype ", dtype_name(dtype_of<T>::value)));
}

template <class T>
void run_binary(BinaryOp op, const T* a, const T* b, void* out, const Shape& shape, const Shape& sa,
                const Shape& sb, const Shape& so, bool par) {
  with_binary_functor<T>(op, [&](auto f) {
    using R = decltype(f(T(), T()));
    kernels::binary_loop<T, R>(a, b, static_cast<R*>(out), shape, sa.data(), sb.data(), so.data(), f, par);
  });
}

template <class T>
void run_binary_flat(BinaryOp op, const T* a, const T* b, void* out, int64_t n, bool a_scalar, bool b_scalar,
                     bool par) {
  with_binary_functor<T>(op, [&](auto f) {
    using R = decltype(f(T(), T()));
    kernels::binary_flat<T, R>(a, b, static_cast<R*>(out), n, a_scalar, b_scalar, f, par);
  });
}

void check_int_pow(BinaryOp op, const Tensor& exponent) {
  if (op != BinaryOp::Pow || exponent.dtype() != DType::Int64 || exponent.numel() == 0) return;
  const Tensor m = amin(exponent, {}, false);
  const int64_t v = *m.data<int64_t>();
  DLCORE_CHECK(v >= 0, ValueError, "pow: integers to negative integer powers are not allowed (exponent ", v,
               "); use a float tensor");
}

void check_same_device(const char* name, const Tensor& a, const Tensor& b) {
  DLCORE_CHECK(a.device() == b.device(), ValueError, name, ": expected tensors on the same device, got ",
               a.device().str(), " and ", b.device().str());
}

// out = a (op) b where a, b already have dtype `ct`; `out` has the final shape.
void binary_into(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  // Fast path (most calls): contiguous operands of the output's shape or single values.
  const bool a_scalar = a.numel() == 1, b_scalar = b.numel() == 1;
  if (out.is_contiguous() && (a_scalar || (a.is_contiguous() && a.shape() == out.shape())) &&
      (b_scalar || (b.is_contiguous() && b.shape() == out.shape()))) {
    const int64_t n = out.numel();
    const bool par = n >= kParallelGrain;
    DLCORE_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
      run_binary_flat<scalar_t>(op, a.data<scalar_t>(), b.data<scalar_t>(), out.raw_data(), n, a_scalar && n != 1,
                                b_scalar && n != 1, par);
    });
    return;
  }
  Shape shape = out.shape();
  Shape sa = broadcast_strides(a.shape(), a.strides(), shape);
  Shape sb = broadcast_strides(b.shape(), b.strides(), shape);
  Shape so = out.strides();
  coalesce_dims(shape, {&sa, &sb, &so});
  const bool par = out.numel() >= kParallelGrain;
  DLCORE_DISPATCH_ALL(a.dtype(), binary_op_name(op), [&] {
    run_binary<scalar_t>(op, a.data<scalar_t>(), b.data<scalar_t>(), out.raw_data(), shape, sa, sb, so, par);
  });
}


template <class T>
void run_unary(UnaryOp op, const T* x, T* out, const Shape& shape, const Shape& sx, const Shape& so, bool par) {
  auto go = [&](auto f) { kernels::unary_loop<T, T>(x, out, shape, sx.data(), so.data(), f, par); };
  if constexpr (std::is_same_v<T, int64_t>) {
    switch (op) {
      case UnaryOp::Neg: return go([](T v) { return wrap_sub(0, v); });
      case UnaryOp::Abs: return go([](T v) { return v < 0 ? wrap_sub(0, v) : v; });
      case UnaryOp::Relu: return go([](T v) { return v > 0 ? v : T(0); });
      default: break;
    }
  } else {
    switch (op) {
      case UnaryOp::Neg: return go([](T v) { return -v; });
      case UnaryOp::Abs: return go([](T v) { return std::abs(v); });
      case UnaryOp::Exp: return go([](T v) { return kernels::exp_any(v); });
      case UnaryOp::Log: return go([](T v) { return std::log(v); });
      case UnaryOp::Sqrt: return go([](T v) { return std::sqrt(v); });
      case UnaryOp::Sin: return go([](T v) { return std::sin(v); });
      case UnaryOp::Cos: return go([](T v) { return std::cos(v); });
      case UnaryOp::Tanh: return go([](T v) { return std::tanh(v); });
      // 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) otherwise: no overflow for large |x|.
      case UnaryOp::Sigmoid:
        return go([](T v) {
          if (v >= 0) return T(1) / (T(1) + kernels::exp_any(-v));
          const T e = kernels::exp_any(v);
          return e / (T(1) + e);
        });
      case UnaryOp::Relu: return go([](T v) { return v > T(0) ? v : (v != v ? v : T(0)); });
    }
  }
  throw TypeError(str(unary_op_name(op), ": unsupported dtype ", dtype_name(dtype_of<T>::value)));
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
  const Tensor st = scalar_tensor(s, promote_with_scalar(a.dtype(), kind));
  return reflected ? binary(op, st, a) : binary(op, a, st);
}

void binary_(BinaryOp op, const Tensor& a, const Tensor& b) {
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
  if (op == UnaryOp::Exp && dt == DType::Float32 && x.is_contiguous()) {
    // the run-time-dispatched vector loop (Note [Fast exp]), in one chunk per thread
    const float* px = x.data<float>();
    float* po = out.data<float>();
    const int64_t n = x.numel();
#ifdef _OPENMP
#pragma omp parallel if (n * 8 >= kParallelGrain && !in_parallel_region())
#endif
    {
#ifdef _OPENMP
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
      const int64_t nt = 1, t = 0;
#endif
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      kernels::exp_shifted(px + b, 0.0f, po + b, e - b);
    }
    return out;
  }
  Shape shape = x.shape(), sx = x.strides(), so = out.strides();
  coalesce_dims(shape, {&sx, &so});
  // Transcendental functions cost ~10-50x an add: parallelise earlier.
  const bool par = x.numel() * (keeps_int ? 1 : 16) >= kParallelGrain;
  DLCORE_DISPATCH_NUMERIC(dt, unary_op_name(op), [&] {
    run_unary<scalar_t>(op, x.data<scalar_t>(), out.data<scalar_t>(), shape, sx, so, par);
  });
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
  DLCORE_DISPATCH_ALL(dt, "where", [&] {
    kernels::where_loop<scalar_t>(cond.data<bool>(), a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(),
                                  sh, sc.data(), sa.data(), sb.data(), so.data(), out.numel() >= kParallelGrain);
  });
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

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
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
        return where(binary_scalar(BinaryOp::Eq, b, 0.0, ScalarKind::Float, false), zeros({}, f.dtype()), f);
      };
      auto db_factor = [](const Tensor& a, const Tensor& b) {
        const Tensor zero_base = binary_scalar(BinaryOp::Eq, a, 0.0, ScalarKind::Float, false);
        const Tensor v = mul(binary(BinaryOp::Pow, a, b), unary(UnaryOp::Log, a));
        return where(zero_base, zeros({}, v.dtype()), v);
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
    case UnaryOp::Neg: return full({}, -1.0, dt);
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
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return differentiable("where", {a, b}, [&] { return where_raw(cond, a, b); },
      [cond, as = a.shape(), bs = b.shape()](const Tensor& g) {
        const Tensor z = zeros({}, g.dtype());
        return std::vector<Tensor>{sum_to(where(cond, g, z), as), sum_to(where(cond, z, g), bs)};
      },
      [cond](const std::vector<Tensor>& t) {
        const Tensor z = zeros({}, t[0].defined() ? t[0].dtype() : t[1].dtype());
        return where(cond, t[0].defined() ? t[0] : z, t[1].defined() ? t[1] : z);
      });
}

}  // namespace dlcore
