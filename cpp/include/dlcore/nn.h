#pragma once
// Neural-network ops (the C++ side of dlcore.nn.functional). All differentiable
// in reverse and forward mode; heavy ones call dedicated backward kernels.
#include <string>

#include "dlcore/ops.h"

namespace dlcore {

struct Conv2dArgs {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

// x: (N, C, H, W), w: (K, C/groups, R, S), bias: (K,) or undefined -> (N, K, P, Q).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dArgs& a);
// The gradients of conv2d as ops of their own (differentiable: double backward works).
Tensor conv2d_input_grad(const Tensor& dy, const Tensor& w, const Shape& x_shape, const Conv2dArgs& a);
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& dy, const Shape& w_shape, const Conv2dArgs& a);

struct Pool2dArgs {
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
};
// x: (N, C, H, W) or (C, H, W).
Tensor max_pool2d(const Tensor& x, const Pool2dArgs& a);
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, const Pool2dArgs& a);
Tensor avg_pool2d(const Tensor& x, const Pool2dArgs& a, bool count_include_pad = true);

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

enum class Reduction { None, Mean, Sum };
Reduction parse_reduction(const std::string& s);  // ValueError on anything but 'none'/'mean'/'sum'

// logits: (N, C), (C,) or (N, C, d1, ...); targets: int64 class indices of the matching shape.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r, double label_smoothing = 0.0);
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction r);
// The lecture's multiclass SVM loss: sum_{j != y} max(0, s_j - s_y + margin)^p,
// divided by C when mean_over_classes (PyTorch's multi_margin_loss).
Tensor multi_margin(const Tensor& scores, const Tensor& targets, int p, double margin, bool mean_over_classes,
                    Reduction r);

}  // namespace dlcore
