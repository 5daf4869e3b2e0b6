#pragma once
// The elementwise functors of every backend, and the one mapping from an op kind
// and a dtype to its functor (which (op, dtype) pairs exist, and the error for the
// others). The CPU loops and the CUDA kernels instantiate the same functors; only
// the float math functions differ, given by a `Math` policy with static
// exp, log, sqrt, sin, cos, tanh, abs and pow (the CPU's uses the vectorised exp of
// fastmath.h, the CUDA one the device library).
#include <type_traits>

#include "dlcore/dtype.h"
#include "dlcore/errors.h"
#include "dlcore/kernels/scalar.h"
#include "dlcore/op_kinds.h"

namespace dlcore {

const char* binary_op_name(BinaryOp op);  // ops/elementwise.cpp
const char* unary_op_name(UnaryOp op);

namespace kernels {

template <class T>
constexpr bool kIsInt = std::is_same_v<T, int64_t>;

// ---------------- binary: out_t is the result type ----------------

template <class T> struct AddF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const {
    if constexpr (kIsInt<T>) return wrap_add(x, y);
    else return T(x + y);
  }
};
template <class T> struct SubF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const {
    if constexpr (kIsInt<T>) return wrap_sub(x, y);
    else return T(x - y);
  }
};
template <class T> struct MulF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const {
    if constexpr (kIsInt<T>) return wrap_mul(x, y);
    else return T(x * y);
  }
};
template <class T> struct DivF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const { return T(x / y); }
};
template <class T, class M> struct PowF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const {
    if constexpr (kIsInt<T>) return ipow(x, y);
    else return T(M::pow(x, y));
  }
};
template <class T> struct MaximumF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const { return fmaximum(x, y); }
};
template <class T> struct MinimumF {
  using out_t = T;
  DLCORE_HD T operator()(T x, T y) const { return fminimum(x, y); }
};
#define DLCORE_COMPARISON(Name, expr)                         \
  template <class T> struct Name {                            \
    using out_t = bool;                                       \
    DLCORE_HD bool operator()(T x, T y) const { return expr; } \
  };
DLCORE_COMPARISON(EqF, x == y)
DLCORE_COMPARISON(NeF, x != y)
DLCORE_COMPARISON(LtF, x < y)
DLCORE_COMPARISON(LeF, x <= y)
DLCORE_COMPARISON(GtF, x > y)
DLCORE_COMPARISON(GeF, x >= y)
#undef DLCORE_COMPARISON

// Calls go(functor) for `op` on operands of dtype T; TypeError for pairs that do not
// exist (arithmetic on bool, true division of integers: the op layer promotes first).
template <class T, class M, class Go>
void with_binary_functor(BinaryOp op, Go&& go) {
  constexpr bool is_bool = std::is_same_v<T, bool>;
  switch (op) {
    case BinaryOp::Add:
      if constexpr (!is_bool) return go(AddF<T>{});
      break;
    case BinaryOp::Sub:
      if constexpr (!is_bool) return go(SubF<T>{});
      break;
    case BinaryOp::Mul:
      if constexpr (!is_bool) return go(MulF<T>{});
      break;
    case BinaryOp::Div:
      if constexpr (std::is_floating_point_v<T>) return go(DivF<T>{});
      break;
    case BinaryOp::Pow:
      if constexpr (!is_bool) return go(PowF<T, M>{});
      break;
    case BinaryOp::Maximum:
      if constexpr (!is_bool) return go(MaximumF<T>{});
      break;
    case BinaryOp::Minimum:
      if constexpr (!is_bool) return go(MinimumF<T>{});
      break;
    case BinaryOp::Eq: return go(EqF<T>{});
    case BinaryOp::Ne: return go(NeF<T>{});
    case BinaryOp::Lt: return go(LtF<T>{});
    case BinaryOp::Le: return go(LeF<T>{});
    case BinaryOp::Gt: return go(GtF<T>{});
    case BinaryOp::Ge: return go(GeF<T>{});
  }
  throw TypeError(str(binary_op_name(op), ": unsupported dtype ", dtype_name(dtype_of<T>::value)));
}

// ---------------- unary: same dtype in and out ----------------

template <class T> struct NegF {
  DLCORE_HD T operator()(T v) const {
    if constexpr (kIsInt<T>) return wrap_sub(0, v);
    else return -v;
  }
};
template <class T, class M> struct AbsF {
  DLCORE_HD T operator()(T v) const {
    if constexpr (kIsInt<T>) return v < 0 ? wrap_sub(0, v) : v;
    else return M::abs(v);
  }
};
template <class T> struct ReluF {  // keeps NaN (v != v is false for int64)
  DLCORE_HD T operator()(T v) const { return v > T(0) ? v : (v != v ? v : T(0)); }
};
#define DLCORE_MATH_FUNCTOR(Name, fn) \
  template <class T, class M> struct Name { DLCORE_HD T operator()(T v) const { return M::fn(v); } };
DLCORE_MATH_FUNCTOR(ExpF, exp)
DLCORE_MATH_FUNCTOR(LogF, log)
DLCORE_MATH_FUNCTOR(SqrtF, sqrt)
DLCORE_MATH_FUNCTOR(SinF, sin)
DLCORE_MATH_FUNCTOR(CosF, cos)
DLCORE_MATH_FUNCTOR(TanhF, tanh)
#undef DLCORE_MATH_FUNCTOR
// 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) otherwise: no overflow for large |x|.
template <class T, class M> struct SigmoidF {
  DLCORE_HD T operator()(T v) const {
    if (v >= T(0)) return T(1) / (T(1) + M::exp(-v));
    const T e = M::exp(v);
    return e / (T(1) + e);
  }
};

// int64: neg, abs, relu (wrapping); floats: all; TypeError otherwise.
template <class T, class M, class Go>
void with_unary_functor(UnaryOp op, Go&& go) {
  if constexpr (kIsInt<T>) {
    switch (op) {
      case UnaryOp::Neg: return go(NegF<T>{});
      case UnaryOp::Abs: return go(AbsF<T, M>{});
      case UnaryOp::Relu: return go(ReluF<T>{});
      default: break;
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Neg: return go(NegF<T>{});
      case UnaryOp::Abs: return go(AbsF<T, M>{});
      case UnaryOp::Exp: return go(ExpF<T, M>{});
      case UnaryOp::Log: return go(LogF<T, M>{});
      case UnaryOp::Sqrt: return go(SqrtF<T, M>{});
      case UnaryOp::Sin: return go(SinF<T, M>{});
      case UnaryOp::Cos: return go(CosF<T, M>{});
      case UnaryOp::Tanh: return go(TanhF<T, M>{});
      case UnaryOp::Sigmoid: return go(SigmoidF<T, M>{});
      case UnaryOp::Relu: return go(ReluF<T>{});
    }
  }
  throw TypeError(str(unary_op_name(op), ": unsupported dtype ", dtype_name(dtype_of<T>::value)));
}

}  // namespace kernels
}  // namespace dlcore
