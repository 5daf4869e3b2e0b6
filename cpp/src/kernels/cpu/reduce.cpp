// Reduction kernels: out[o, i] = reduce_r x[o, r, i] over a contiguous (outer, R, inner) buffer.
#include "dlcore/kernels/reduce.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "dlcore/parallel.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore::kernels {

namespace {

template <class T> struct Acc { using type = T; };
template <> struct Acc<float> { using type = double; };

// Sum of n contiguous values. 16 independent lanes (the compiler keeps them in
// vector registers) over blocks of 512; each block total goes into an
// accumulator of the wider type, so float32 sums of millions of values keep
// about 1e-7 relative accuracy.
template <class T>
typename Acc<T>::type sum_contig(const T* x, int64_t n) {
  using A = typename Acc<T>::type;
  A total = 0;
  constexpr int64_t kBlock = 512, kLanes = 16;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    T lane[kLanes] = {};
    int64_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lane[l] += x[i + l];
    T part = 0;
    for (; i < e; ++i) part += x[i];
    for (int64_t l = 0; l < kLanes; ++l) part += lane[l];
    total += static_cast<A>(part);
  }
  return total;
}

int threads_for(int64_t work) {
#ifdef _OPENMP
  if (work < kParallelGrain || omp_in_parallel()) return 1;
  return omp_get_max_threads();
#else
  (void)work;
  return 1;
#endif
}

}  // namespace

template <class T>
void sum_outer_r_inner(const T* x, T* out, int64_t outer, int64_t R, int64_t inner) {
  using A = typename Acc<T>::type;
  const int64_t total = outer * R * inner;
  const int nt = threads_for(total);
  if (inner == 1 && outer < nt) {
    // Few long rows (e.g. a full reduction): split each row across threads,
    // combine the per-thread partials in a fixed order.
    for (int64_t o = 0; o < outer; ++o) {
      const T* row = x + o * R;
      std::vector<A> part(nt, A(0));
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
      {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
#else
        const int t = 0, n = 1;
#endif
        const int64_t b = R * t / n, e = R * (t + 1) / n;
        part[t] = sum_contig(row + b, e - b);
      }
      A s = 0;
      for (A v : part) s += v;
      out[o] = static_cast<T>(s);
    }
    return;
  }
  if (inner == 1) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
    for (int64_t o = 0; o < outer; ++o) out[o] = static_cast<T>(sum_contig(x + o * R, R));
    return;
  }
  // inner > 1: accumulate whole rows of `inner` (unit stride, vectorised).
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    std::vector<A> acc;
#ifdef _OPENMP
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
#else
    const int t = 0, n = 1;
#endif
    // partition (outer x inner-chunks) work among threads
    const int64_t chunk = 1024;
    const int64_t nchunks = (inner + chunk - 1) / chunk;
    const int64_t items = outer * nchunks;
    for (int64_t it = items * t / n; it < items * (t + 1) / n; ++it) {
      const int64_t o = it / nchunks, c = it % nchunks;
      const int64_t i0 = c * chunk, len = std::min(chunk, inner - i0);
      acc.assign(len, A(0));
      const T* base = x + o * R * inner + i0;
      for (int64_t r = 0; r < R; ++r) {
        const T* row = base + r * inner;
        for (int64_t i = 0; i < len; ++i) acc[i] += row[i];
      }
      T* po = out + o * inner + i0;
      for (int64_t i = 0; i < len; ++i) po[i] = static_cast<T>(acc[i]);
    }
  }
}

template <class T>
void minmax_outer_r_inner(const T* x, T* out, int64_t* idx, int64_t outer, int64_t R, int64_t inner,
                          bool is_max) {
  const int nt = threads_for(outer * R * inner);
  const int64_t items = outer * inner;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && items > 1)
#endif
  for (int64_t it = 0; it < items; ++it) {
    const int64_t o = it / inner, i = it % inner;
    const T* p = x + o * R * inner + i;
    T best = p[0];
    int64_t bi = 0;
    for (int64_t r = 1; r < R; ++r) {
      const T v = p[r * inner];
      bool better;
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(best)) break;  // NaN wins and stays
        better = std::isnan(v) || (is_max ? v > best : v < best);
      } else {
        better = is_max ? v > best : v < best;
      }
      if (better) {
        best = v;
        bi = r;
      }
    }
    out[it] = best;
    if (idx) idx[it] = bi;
  }
}

template void sum_outer_r_inner<float>(const float*, float*, int64_t, int64_t, int64_t);
template void sum_outer_r_inner<double>(const double*, double*, int64_t, int64_t, int64_t);
template void sum_outer_r_inner<int64_t>(const int64_t*, int64_t*, int64_t, int64_t, int64_t);
template void minmax_outer_r_inner<float>(const float*, float*, int64_t*, int64_t, int64_t, int64_t, bool);
template void minmax_outer_r_inner<double>(const double*, double*, int64_t*, int64_t, int64_t, int64_t, bool);
template void minmax_outer_r_inner<int64_t>(const int64_t*, int64_t*, int64_t*, int64_t, int64_t, int64_t, bool);

}  // namespace dlcore::kernels
