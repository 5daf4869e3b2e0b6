#pragma once
// Neural-network kernels (pooling, softmax, losses) over raw contiguous buffers.
// No Tensor, no graph (DESIGN.md rule 2). Vocabulary: N,C,H,W input, R,S window,
// P,Q output height/width. A "plane" is one (n, c) image channel of H*W values.
#include <cmath>
#include <cstdint>

#include "dlcore/kernels/scalar.h"  // DLCORE_HD

namespace dlcore::kernels {

struct Pool2dShape {
  int64_t planes;  // N*C
  int64_t H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, P, Q;
};

// The pooling window of output (p, q), shared by the CPU and CUDA kernels.
// Max pooling: the max over the in-bounds window elements of plane xp (padding is
// -inf, NaN wins, first occurrence on ties) and its flat index h*W+w (0 when the
// window holds no element; the value is then -inf).
template <class T>
DLCORE_HD inline int64_t max_pool_window(const T* xp, const Pool2dShape& s, int64_t p, int64_t q, T& best) {
  best = -static_cast<T>(INFINITY);
  int64_t bi = -1;
  for (int64_t r = 0; r < s.R; ++r) {
    const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
    if (h < 0 || h >= s.H) continue;
    for (int64_t c = 0; c < s.S; ++c) {
      const int64_t w = q * s.stride_w - s.pad_w + c * s.dil_w;
      if (w < 0 || w >= s.W) continue;
      const T v = xp[h * s.W + w];
      if (bi < 0 || v > best || (v != v && best == best)) {
        best = v;
        bi = h * s.W + w;
      }
    }
  }
  return bi < 0 ? 0 : bi;
}

// Average pooling: the window clipped to the input and the divisor (R*S cells of the
// padded input with count_include_pad, else the in-bounds ones). No dilation.
struct AvgPoolWindow {
  int64_t h0, h1, w0, w1, divisor;
};
DLCORE_HD inline AvgPoolWindow avg_pool_window(const Pool2dShape& s, int64_t p, int64_t q, bool count_include_pad) {
  const int64_t hs = p * s.stride_h - s.pad_h, ws = q * s.stride_w - s.pad_w;
  const int64_t he = hs + s.R < s.H + s.pad_h ? hs + s.R : s.H + s.pad_h;
  const int64_t we = ws + s.S < s.W + s.pad_w ? ws + s.S : s.W + s.pad_w;
  AvgPoolWindow win{hs > 0 ? hs : 0, he < s.H ? he : s.H, ws > 0 ? ws : 0, we < s.W ? we : s.W, 0};
  win.divisor = count_include_pad ? (he - hs) * (we - ws) : (win.h1 - win.h0) * (win.w1 - win.w0);
  if (win.divisor <= 0) win.divisor = 1;
  return win;
}

// y: (planes, P, Q) = max over each window of x: (planes, H, W); idx = flat h*W+w
// of the max within its plane (first occurrence; NaN wins). Padding is -inf.
template <class T>
void max_pool2d_forward(const T* x, T* y, int64_t* idx, const Pool2dShape& s);
// dx: (planes, H, W) = 0, then dx[idx] += dy for every output (overlapping windows add).
template <class T>
void max_pool2d_backward(const T* dy, const int64_t* idx, T* dx, const Pool2dShape& s);
// gather: y: (planes, P, Q) = x[idx] (the max-pool VJP's own VJP).
template <class T>
void pool_gather(const T* x, const int64_t* idx, T* y, const Pool2dShape& s);

// y = mean over each window; divisor = R*S (count_include_pad) or the number of
// in-bounds elements.
template <class T>
void avg_pool2d_forward(const T* x, T* y, const Pool2dShape& s, bool count_include_pad);
// dx = 0, then each dy spreads dy/divisor over its window.
template <class T>
void avg_pool2d_backward(const T* dy, T* dx, const Pool2dShape& s, bool count_include_pad);

// Softmax over the middle dim of x: (outer, C, inner); log_softmax when `log`.
// Stable: subtracts the max before exponentiating (log-sum-exp).
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t C, int64_t inner, bool log);

// Cross-entropy of logits x: (N, C) against int64 targets (N,), checked in range:
//   loss[i] = (1-e) * (lse_i - x[i, t_i]) + (e/C) * sum_j (lse_i - x[i, j]),   e = label smoothing
// lse (N,) receives each row's log-sum-exp for the backward.
template <class T>
void cross_entropy_forward(const T* x, const int64_t* target, T* loss, T* lse, int64_t N, int64_t C,
                           double smoothing);
// dx[i, j] = g[i] * (exp(x[i, j] - lse[i]) - (1-e) [j == t_i] - e/C): the fused backward
// (softmax minus the smoothed one-hot), one exp pass.
template <class T>
void cross_entropy_backward(const T* x, const int64_t* target, const T* g, const T* lse, T* dx, int64_t N,
                            int64_t C, double smoothing);

// Multiclass margin losses of scores s: (N, C), shared by the lecture's hinge
// loss and PyTorch's multi_margin_loss:
//   loss[i] = sum_{j != t_i} max(0, s[i,j] - s[i,t_i] + margin)^p  (divided by C when `mean_over_classes`)
template <class T>
void multi_margin_forward(const T* s, const int64_t* target, T* loss, int64_t N, int64_t C, int p, double margin,
                          bool mean_over_classes);

}  // namespace dlcore::kernels
