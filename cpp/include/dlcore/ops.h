#pragma once
// The op layer: every public tensor operation. Each checks its inputs and raises
// a typed error naming shapes and values (DESIGN.md rule 5), then calls kernels.
#include <optional>
#include <string>
#include <vector>

#include "dlcore/op_kinds.h"
#include "dlcore/random.h"
#include "dlcore/tensor.h"

namespace dlcore {

// ---- creation ----
// Every creation op takes the device last (default CPU). Random draws always come
// from the host generator (then copied), so a seed gives the same values on every device.
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device{});
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device{});
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = Device{});
Tensor scalar_tensor(double value, DType dtype, Device device = Device{});
Tensor arange(double start, double end, double step, DType dtype, Device device = Device{});
Tensor linspace(double start, double end, int64_t steps, DType dtype = DType::Float32, Device device = Device{});
Tensor eye(int64_t n, int64_t m, DType dtype = DType::Float32, Device device = Device{});
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Generator* gen = nullptr, Device device = Device{});
Tensor randn(const Shape& shape, DType dtype = DType::Float32, Generator* gen = nullptr, Device device = Device{});
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Int64,
               Generator* gen = nullptr, Device device = Device{});
Tensor randperm(int64_t n, Generator* gen = nullptr, Device device = Device{});

// ---- copies and conversions ----
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to_dtype(const Tensor& x, DType dtype);
// x on `device` (x itself when it is there already). Differentiable: the gradient
// goes back to x's device.
Tensor to_device(const Tensor& x, Device device);
// x itself when it is in host memory, else a history-free copy of it on the host.
Tensor on_host(const Tensor& x);
// The value of a one-element tensor as a double (copied to the host when needed).
double item(const Tensor& x);
// dst <- src (broadcast to dst's shape, converted to dst's dtype); bumps dst's version.
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& dst, double value);

// ---- views and shape ops ----
Tensor reshape(const Tensor& x, const Shape& shape);  // view when possible, else a copy
Tensor view(const Tensor& x, const Shape& shape);     // ValueError when a view is impossible
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor t(const Tensor& x);  // reverse all dims (numpy .T)
Tensor squeeze(const Tensor& x, std::optional<std::vector<int64_t>> dims = std::nullopt);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dim
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t stop, int64_t step);  // python semantics
Tensor select(const Tensor& x, int64_t dim, int64_t index);  // removes dim; IndexError out of range
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);  // int64 index of any shape (flattened)
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
// Helpers that are the gradients of slicing and gathering (differentiable too):
// zeros of base_shape with g written into the slice; zeros with src rows added at index.
Tensor slice_backward(const Tensor& g, const Shape& base_shape, int64_t dim, int64_t start, int64_t stop, int64_t step);
Tensor index_add(const Shape& base_shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);

// ---- elementwise ----
const char* binary_op_name(BinaryOp op);
const char* unary_op_name(UnaryOp op);

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
// Tensor (op) Python scalar with weak promotion (Note [Type promotion]); `reflected`
// computes scalar (op) tensor.
Tensor binary_scalar(BinaryOp op, const Tensor& a, double s, ScalarKind kind, bool reflected);
// In place: a <- a (op) b; ValueError when b does not broadcast to a's shape,
// TypeError when the result type does not fit a's dtype (e.g. int64 += float).
void binary_(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor unary(UnaryOp op, const Tensor& x);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- reductions ----
// dims empty = all dims.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, double correction, bool keepdim);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim);
// values and int64 indices along one dim (first occurrence on ties, NaN wins).
std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim);
std::pair<Tensor, Tensor> min_dim(const Tensor& x, int64_t dim, bool keepdim);
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim);

// ---- linear algebra ----
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace dlcore
