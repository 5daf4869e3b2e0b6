#pragma once
// Shape and stride arithmetic. Strides are in elements (not bytes) and may be
// zero (broadcast) or negative (views of numpy arrays with negative steps).
#include <cstdint>
#include <vector>

namespace dlcore {

using Shape = std::vector<int64_t>;

// Product of the dims; ValueError on a negative dim or when it overflows int64,
// naming the shape.
int64_t numel_checked(const Shape& shape);
// Product of dims [begin, end) (1 when empty): the outer and inner extents when a
// tensor is seen as (outer, n, inner) around one dim or a run of dims.
int64_t dims_product(const Shape& shape, int64_t begin, int64_t end);
Shape contiguous_strides(const Shape& shape);
bool is_contiguous(const Shape& shape, const Shape& strides);
// numpy broadcasting of two shapes; ValueError naming both on mismatch.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Strides of `shape`/`strides` seen as `target` (zeros on broadcast dims).
Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target);
// dim in [-ndim, ndim) -> [0, ndim); IndexError otherwise. `ndim` 0 accepts -1 and 0.
int64_t normalize_dim(int64_t dim, int64_t ndim);
// Strides that view (shape, strides) as `new_shape` without copying, or empty
// when impossible (then reshape copies and view raises).
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out);
// Resolve a single -1 in a requested shape; ValueError when numel differs.
Shape infer_shape(const Shape& requested, int64_t numel);

// Merge adjacent dims that are contiguous with each other in every operand, drop
// size-1 dims. Used by the strided loops so that contiguous data runs as 1-D.
// shape is modified in place; strides[k] is the stride vector of operand k.
void coalesce_dims(Shape& shape, std::vector<Shape*> strides);

}  // namespace dlcore
