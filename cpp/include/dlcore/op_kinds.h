#pragma once
// The elementwise op kinds, shared by the op layer and every backend's kernels.
namespace dlcore {

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge };
enum class UnaryOp { Neg, Abs, Exp, Log, Sqrt, Sin, Cos, Tanh, Sigmoid, Relu };

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

}  // namespace dlcore
