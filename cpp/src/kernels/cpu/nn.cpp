// Pooling, softmax and loss kernels. Parallel over independent planes/rows on
// the outermost loop (each writes only its own outputs, so no races).
#include "dlcore/kernels/nn.h"

#include "dlcore/kernels/fastmath.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dlcore/parallel.h"

namespace dlcore::kernels {

namespace {
bool worth_parallel(int64_t work) { return work >= kParallelGrain && !in_parallel_region(); }
}  // namespace

template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* idx, const Pool2dShape& s) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(s.planes * plane_out * s.R * s.S))
#endif
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    const T* xp = x + pl * plane_in;
    T* yp = y + pl * plane_out;
    int64_t* ip = idx + pl * plane_out;
    if (s.pad_h == 0 && s.pad_w == 0 && s.dil_h == 1 && s.dil_w == 1 && (s.P - 1) * s.stride_h + s.R <= s.H &&
        (s.Q - 1) * s.stride_w + s.S <= s.W) {
      // Common case (no padding, no dilation, no ceil-mode overhang): every window lies inside the input.
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const int64_t h0 = p * s.stride_h, w0 = q * s.stride_w;
          int64_t bi = h0 * s.W + w0;
          T best = xp[bi];
          for (int64_t r = 0; r < s.R; ++r)
            for (int64_t c = 0; c < s.S; ++c) {
              const int64_t at = (h0 + r) * s.W + w0 + c;
              const T v = xp[at];
              if (v > best || (v != v && best == best)) {
                best = v;
                bi = at;
              }
            }
          yp[p * s.Q + q] = best;
          ip[p * s.Q + q] = bi;
        }
      continue;
    }
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) ip[p * s.Q + q] = max_pool_window(xp, s, p, q, yp[p * s.Q + q]);
  }
}

template <class T>
void max_pool2d_backward(const T* dy, const int64_t* idx, T* dx, const Pool2dShape& s) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(s.planes * plane_in))
#endif
  for (int64_t pl = 0; pl < s.planes; ++pl) {  // a plane's outputs route only into that plane
    T* dxp = dx + pl * plane_in;
    std::fill(dxp, dxp + plane_in, T(0));
    const T* dyp = dy + pl * plane_out;
    const int64_t* ip = idx + pl * plane_out;
    for (int64_t o = 0; o < plane_out; ++o) dxp[ip[o]] += dyp[o];
  }
}

template <class T>
void pool_gather(const T* x, const int64_t* idx, T* y, const Pool2dShape& s) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(s.planes * plane_out))
#endif
  for (int64_t pl = 0; pl < s.planes; ++pl)
    for (int64_t o = 0; o < plane_out; ++o) y[pl * plane_out + o] = x[pl * plane_in + idx[pl * plane_out + o]];
}

template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, bool count_include_pad) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(s.planes * plane_out * s.R * s.S))
#endif
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    const T* xp = x + pl * plane_in;
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) {
        const AvgPoolWindow w = avg_pool_window(s, p, q, count_include_pad);
        T acc = 0;
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) acc += xp[h * s.W + c];
        y[pl * plane_out + p * s.Q + q] = acc / static_cast<T>(w.divisor);
      }
  }
}

template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, bool count_include_pad) {
  const int64_t plane_in = s.H * s.W, plane_out = s.P * s.Q;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(s.planes * plane_out * s.R * s.S))
#endif
  for (int64_t pl = 0; pl < s.planes; ++pl) {
    T* dxp = dx + pl * plane_in;
    std::fill(dxp, dxp + plane_in, T(0));
    for (int64_t p = 0; p < s.P; ++p)
      for (int64_t q = 0; q < s.Q; ++q) {
        const AvgPoolWindow w = avg_pool_window(s, p, q, count_include_pad);
        const T g = dy[pl * plane_out + p * s.Q + q] / static_cast<T>(w.divisor);
        for (int64_t h = w.h0; h < w.h1; ++h)
          for (int64_t c = w.w0; c < w.w1; ++c) dxp[h * s.W + c] += g;
      }
  }
}

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t C, int64_t inner, bool log) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(outer * C * inner * 8))
#endif
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* xp = x + o * C * inner + i;
      T* yp = y + o * C * inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < C; ++c) m = std::max(m, xp[c * inner]);
      if (std::isinf(m) && m < 0) m = 0;  // all -inf: avoid inf - inf
      T sum = 0;
      if (inner == 1 && !log) {  // unit stride: a vectorised exp pass, then a sum
        exp_shifted(xp, m, yp, C);
        for (int64_t c = 0; c < C; ++c) sum += yp[c];
      } else {
        for (int64_t c = 0; c < C; ++c) {
          const T e = exp_any(xp[c * inner] - m);
          if (!log) yp[c * inner] = e;
          sum += e;
        }
      }
      if (log) {
        const T lse = m + std::log(sum);
        for (int64_t c = 0; c < C; ++c) yp[c * inner] = xp[c * inner] - lse;
      } else {
        const T inv = T(1) / sum;
        for (int64_t c = 0; c < C; ++c) yp[c * inner] *= inv;
      }
    }
  }
}

namespace {
// log-sum-exp of one row; `scratch` (C values) receives exp(x - max).
template <class T>
T row_lse(const T* xr, int64_t C, T* scratch) {
  T m = max_of(xr, C);
  if (std::isinf(m) && m < 0) return m;
  if (m != m) m = 0;  // a NaN row: the exp pass propagates it
  return m + std::log(exp_shifted_sum(xr, m, scratch, C));  // vectorised (Note [Fast exp])
}
}  // namespace

template <class T>
void cross_entropy_forward(const T* x, const int64_t* target, T* loss, T* lse_out, int64_t N, int64_t C,
                           double smoothing) {
  const T e = static_cast<T>(smoothing);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(N * C * 8))
#endif
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    thread_local std::vector<T> scratch;
    scratch.resize(static_cast<size_t>(C));
    const T lse = row_lse(xr, C, scratch.data());
    lse_out[i] = lse;
    T l = (T(1) - e) * (lse - xr[target[i]]);
    if (e != T(0)) {
      T s = 0;
      for (int64_t c = 0; c < C; ++c) s += lse - xr[c];
      l += e / static_cast<T>(C) * s;
    }
    loss[i] = l;
  }
}

template <class T>
void cross_entropy_backward(const T* x, const int64_t* target, const T* g, const T* lse, T* dx, int64_t N,
                            int64_t C, double smoothing) {
  const T e = static_cast<T>(smoothing);
  const T off = e / static_cast<T>(C);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(N * C * 8))
#endif
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    T* dr = dx + i * C;
    const T gi = g[i];
    exp_shifted(xr, lse[i], dr, C);  // softmax row
    for (int64_t c = 0; c < C; ++c) dr[c] = gi * (dr[c] - off);
    dr[target[i]] -= gi * (T(1) - e);
  }
}

template <class T>
void multi_margin_forward(const T* s, const int64_t* target, T* loss, int64_t N, int64_t C, int p, double margin,
                          bool mean_over_classes) {
  const T m = static_cast<T>(margin);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (worth_parallel(N * C))
#endif
  for (int64_t i = 0; i < N; ++i) {
    const T* sr = s + i * C;
    const T sy = sr[target[i]];
    T l = 0;
    for (int64_t c = 0; c < C; ++c) {
      if (c == target[i]) continue;
      const T v = sr[c] - sy + m;
      if (v > T(0)) l += p == 1 ? v : v * v;
    }
    loss[i] = mean_over_classes ? l / static_cast<T>(C) : l;
  }
}

#define DLCORE_NN_INSTANTIATE(T)                                                                              \
  template void max_pool2d_forward<T>(const T*, T*, int64_t*, const Pool2dShape&);                           \
  template void max_pool2d_backward<T>(const T*, const int64_t*, T*, const Pool2dShape&);                     \
  template void pool_gather<T>(const T*, const int64_t*, T*, const Pool2dShape&);                             \
  template void avg_pool2d_forward<T>(const T*, T*, const Pool2dShape&, bool);                                \
  template void avg_pool2d_backward<T>(const T*, T*, const Pool2dShape&, bool);                               \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool);                            \
  template void cross_entropy_forward<T>(const T*, const int64_t*, T*, T*, int64_t, int64_t, double);        \
  template void cross_entropy_backward<T>(const T*, const int64_t*, const T*, const T*, T*, int64_t, int64_t,  \
                                          double);                                                           \
  template void multi_margin_forward<T>(const T*, const int64_t*, T*, int64_t, int64_t, int, double, bool);
DLCORE_NN_INSTANTIATE(float)
DLCORE_NN_INSTANTIATE(double)

}  // namespace dlcore::kernels
