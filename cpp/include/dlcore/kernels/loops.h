#pragma once
// Strided N-d loops over raw buffers. No Tensor, no graph (DESIGN.md rule 2).
//
// strided_apply<NA>(shape, strides, inner, parallel) walks the index space of
// `shape` (already coalesced, see coalesce_dims) and calls
//     inner(offsets, n, inner_strides)
// for each run along the last dim, where offsets[k] is the element offset of
// operand k at the run's start. With `parallel` the linear index range is split
// into one contiguous chunk per thread (Note [Parallel threshold]).
#include <array>
#include <cstdint>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore::kernels {

template <size_t NA, class Inner>
void strided_range(const std::vector<int64_t>& shape, const std::array<const int64_t*, NA>& strides,
                   int64_t begin, int64_t end, Inner& inner) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::array<int64_t, NA> off{};
  std::array<int64_t, NA> inner_st{};
  if (nd == 0) {
    if (begin < end) inner(off, 1, inner_st);
    return;
  }
  // multi-index of `begin`
  std::vector<int64_t> idx(nd, 0);
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; --d) {
    idx[d] = rem % shape[d];
    rem /= shape[d];
  }
  for (size_t k = 0; k < NA; ++k) {
    inner_st[k] = strides[k][nd - 1];
    for (int64_t d = 0; d < nd; ++d) off[k] += idx[d] * strides[k][d];
  }
  const int64_t last = shape[nd - 1];
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = last - idx[nd - 1];
    if (n > end - pos) n = end - pos;
    inner(off, n, inner_st);
    pos += n;
    if (pos >= end) break;
    // advance to the start of the next run
    for (size_t k = 0; k < NA; ++k) off[k] += n * inner_st[k];
    idx[nd - 1] += n;
    for (int64_t d = nd - 1; d > 0 && idx[d] == shape[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
      for (size_t k = 0; k < NA; ++k) off[k] += strides[k][d - 1] - shape[d] * strides[k][d];
    }
  }
}

// Calls chunk(begin, end) over [0, n): once per OpenMP thread on contiguous chunks when
// `parallel` (and not already inside a parallel region), else once for the whole range.
template <class Chunk>
void for_chunks(int64_t n, bool parallel, Chunk&& chunk) {
#ifdef _OPENMP
  if (parallel && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      chunk(n * t / nt, n * (t + 1) / nt);
    }
    return;
  }
#endif
  (void)parallel;
  chunk(int64_t(0), n);
}

template <size_t NA, class Inner>
void strided_apply(const std::vector<int64_t>& shape, const std::array<const int64_t*, NA>& strides,
                   Inner inner, bool parallel) {
  int64_t total = 1;
  for (int64_t s : shape) total *= s;
  if (total == 0) return;
  for_chunks(total, parallel, [&](int64_t b, int64_t e) {
    Inner local = inner;  // per thread: the inner functor may keep state
    strided_range<NA>(shape, strides, b, e, local);
  });
}

}  // namespace dlcore::kernels
