#pragma once
// Element types and the type-promotion rule.
//
// Note [Type promotion]
//   Between tensors the result is the larger type of the lattice
//     bool < int64 < float32 < float64
//   (PyTorch's rule: int64 with float32 gives float32, unlike numpy's float64).
//   Python scalars are "weak": they never widen a tensor's type within its kind.
//     float tensor (op) Python int/float -> the tensor's float type
//     int64 tensor (op) Python int       -> int64
//     int64/bool tensor (op) Python float -> float32 (the default float type)
//     bool tensor (op) Python int        -> int64
//   True division `/` of integer tensors gives float32. Comparisons give bool.
#include <cstdint>
#include <string>

namespace dlcore {

enum class DType : int8_t { Bool = 0, Int64 = 1, Float32 = 2, Float64 = 3 };

constexpr int64_t itemsize(DType t) {
  return t == DType::Bool ? 1 : (t == DType::Float32 ? 4 : 8);
}
constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }
const char* dtype_name(DType t);  // "float32", ...

inline DType promote(DType a, DType b) { return static_cast<int8_t>(a) >= static_cast<int8_t>(b) ? a : b; }

// Kind of a Python scalar operand, for weak promotion.
enum class ScalarKind : int8_t { Bool, Int, Float };
DType promote_with_scalar(DType t, ScalarKind k);

template <class T> struct dtype_of;
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };

}  // namespace dlcore

// The one place dtypes are dispatched (DESIGN.md rule 3): binds `scalar_t` and runs the body.
#define DLCORE_DISPATCH_CASE(enum_v, type, ...) \
  case ::dlcore::DType::enum_v: {               \
    using scalar_t = type;                      \
    return __VA_ARGS__();                       \
  }
#define DLCORE_DISPATCH_ALL(dt, name, ...)                                                        \
  [&] {                                                                                           \
    switch (dt) {                                                                                 \
      DLCORE_DISPATCH_CASE(Bool, bool, __VA_ARGS__)                                               \
      DLCORE_DISPATCH_CASE(Int64, int64_t, __VA_ARGS__)                                           \
      DLCORE_DISPATCH_CASE(Float32, float, __VA_ARGS__)                                           \
      DLCORE_DISPATCH_CASE(Float64, double, __VA_ARGS__)                                          \
    }                                                                                             \
    throw ::dlcore::TypeError(::dlcore::str(name, ": unsupported dtype"));                        \
  }()
#define DLCORE_DISPATCH_NUMERIC(dt, name, ...)                                                    \
  [&] {                                                                                           \
    switch (dt) {                                                                                 \
      DLCORE_DISPATCH_CASE(Int64, int64_t, __VA_ARGS__)                                           \
      DLCORE_DISPATCH_CASE(Float32, float, __VA_ARGS__)                                           \
      DLCORE_DISPATCH_CASE(Float64, double, __VA_ARGS__)                                          \
      default: break;                                                                             \
    }                                                                                             \
    throw ::dlcore::TypeError(::dlcore::str(name, ": unsupported dtype ", ::dlcore::dtype_name(dt))); \
  }()
#define DLCORE_DISPATCH_FLOAT(dt, name, ...)                                                      \
  [&] {                                                                                           \
    switch (dt) {                                                                                 \
      DLCORE_DISPATCH_CASE(Float32, float, __VA_ARGS__)                                           \
      DLCORE_DISPATCH_CASE(Float64, double, __VA_ARGS__)                                          \
      default: break;                                                                             \
    }                                                                                             \
    throw ::dlcore::TypeError(::dlcore::str(name, ": expected a float32 or float64 tensor, got ", \
                                            ::dlcore::dtype_name(dt)));                           \
  }()
