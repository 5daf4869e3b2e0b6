#pragma once
// Reduction kernels over a contiguous buffer viewed as (outer, R, inner):
//   out[o, i] = reduce_r x[o, r, i]
// The op layer permutes/copies so that every reduction takes this form.
#include <cstdint>

namespace dlcore::kernels {

// sum: T in {float, double, int64}; float accumulates blockwise in float, then in double.
template <class T>
void sum_outer_r_inner(const T* x, T* out, int64_t outer, int64_t R, int64_t inner);

// max (is_max) or min with first-occurrence indices; NaN propagates (and wins).
// `idx` may be null when only values are wanted. R >= 1.
template <class T>
void minmax_outer_r_inner(const T* x, T* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
                          bool is_max);

}  // namespace dlcore::kernels
