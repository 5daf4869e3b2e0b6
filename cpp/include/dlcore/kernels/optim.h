#pragma once
// Fused optimiser updates: one pass over a parameter's n elements per step
// (instead of a chain of tensor ops). Plain loops over raw buffers.
#include <cstdint>

namespace dlcore::kernels {

// SGD with momentum/dampening/Nesterov/weight decay (PyTorch's formulation):
//   g = grad + wd * p
//   buf = first ? g : momentum * buf + (1 - dampening) * g      (when momentum != 0)
//   g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// buf may be null when momentum == 0.
template <class T>
void sgd_step(T* p, const T* grad, T* buf, int64_t n, double lr, double momentum, double dampening, bool nesterov,
              double weight_decay, bool first);

// Adam / AdamW at step t >= 1 (bias-corrected):
//   AdamW: p *= 1 - lr * wd;   Adam: g = grad + wd * p
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
template <class T>
void adam_step(T* p, const T* grad, T* m, T* v, int64_t n, int64_t t, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool decoupled);

}  // namespace dlcore::kernels
