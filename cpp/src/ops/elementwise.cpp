// Elementwise ops with numpy broadcasting and the promotion rule of
// Note [Type promotion].
#include <cmath>
#include <type_traits>

#include "dlcore/kernels/elementwise.h"
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

// Runs the kernel for `op` on operands already in dtype T; R is the output type.
template <class T>
void run_binary(BinaryOp op, const T* a, const T* b, void* out, const Shape& shape, const Shape& sa,
                const Shape& sb, const Shape& so, bool par) {
  auto go = [&](auto f) {
    using R = decltype(f(T(), T()));
    kernels::binary_loop<T, R>(a, b, static_cast<R*>(out), shape, sa.data(), sb.data(), so.data(), f, par);
  };
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
      case UnaryOp::Exp: return go([](T v) { return std::exp(v); });
      case UnaryOp::Log: return go([](T v) { return std::log(v); });
      case UnaryOp::Sqrt: return go([](T v) { return std::sqrt(v); });
      case UnaryOp::Sin: return go([](T v) { return std::sin(v); });
      case UnaryOp::Cos: return go([](T v) { return std::cos(v); });
      case UnaryOp::Tanh: return go([](T v) { return std::tanh(v); });
      // 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) otherwise: no overflow for large |x|.
      case UnaryOp::Sigmoid:
        return go([](T v) {
          if (v >= 0) return T(1) / (T(1) + std::exp(-v));
          const T e = std::exp(v);
          return e / (T(1) + e);
        });
      case UnaryOp::Relu: return go([](T v) { return v > T(0) ? v : (v != v ? v : T(0)); });
    }
  }
  throw TypeError(str(unary_op_name(op), ": unsupported dtype ", dtype_name(dtype_of<T>::value)));
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
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

Tensor unary(UnaryOp op, const Tensor& x_in) {
  const bool keeps_int = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu;
  DLCORE_CHECK(!(x_in.dtype() == DType::Bool && keeps_int), TypeError, unary_op_name(op),
               ": not supported for bool tensors");
  const DType dt = keeps_int ? x_in.dtype() : (is_floating(x_in.dtype()) ? x_in.dtype() : DType::Float32);
  const Tensor x = to_dtype(x_in, dt);
  Tensor out = Tensor::empty(x.shape(), dt, x.device());
  Shape shape = x.shape(), sx = x.strides(), so = out.strides();
  coalesce_dims(shape, {&sx, &so});
  // Transcendental functions cost ~10-50x an add: parallelise earlier.
  const bool par = x.numel() * (keeps_int ? 1 : 16) >= kParallelGrain;
  DLCORE_DISPATCH_NUMERIC(dt, unary_op_name(op), [&] {
    run_unary<scalar_t>(op, x.data<scalar_t>(), out.data<scalar_t>(), shape, sx, so, par);
  });
  return out;
}

Tensor where(const Tensor& cond_in, const Tensor& a_in, const Tensor& b_in) {
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
