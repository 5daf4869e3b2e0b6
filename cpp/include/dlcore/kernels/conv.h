#pragma once
// CPU 2-D convolution kernels for dlcore (forward, gradient w.r.t. input, gradient w.r.t. weight).
//
// Plain functions over raw contiguous buffers (no Tensor, no autograd). The op layer validates
// shapes, computes P and Q and the bias gradient. OpenMP-parallel inside (when compiled with
// OpenMP); do not call from inside an OpenMP parallel region expecting parallelism.
// Algorithm selection per shape is documented in cpp/src/kernels/cpu/conv.cpp
// (Note [Conv algorithm], Note [Conv threading]).
#include <cstdint>

namespace dlcore::kernels {

struct Conv2dShape {
  int64_t N, C, H, W;  // input (N, C, H, W), contiguous NCHW
  int64_t K, R, S;     // weight (K, C/groups, R, S), contiguous
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t P, Q;  // output (N, K, P, Q): P = (H + 2*pad_h - dil_h*(R-1) - 1)/stride_h + 1, same for Q
};

// Shapes: x (N,C,H,W), w (K,C/groups,R,S), bias (K) or null, y (N,K,P,Q).
// y = conv(x, w) + bias. y is overwritten.
template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s);

// Shapes: dy (N,K,P,Q), w (K,C/groups,R,S), dx (N,C,H,W).
// dx = conv_transpose(dy, w): gradient w.r.t. the input. dx is overwritten.
template <class T>
void conv2d_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s);

// Shapes: x (N,C,H,W), dy (N,K,P,Q), dw (K,C/groups,R,S).
// dw = sum over n of correlation(x, dy): gradient w.r.t. the weight. dw is overwritten.
template <class T>
void conv2d_backward_weight(const T* x, const T* dy, T* dw, const Conv2dShape& s);

}  // namespace dlcore::kernels
