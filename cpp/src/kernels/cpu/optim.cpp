#include "dlcore/kernels/optim.h"

#include <cmath>

#include "dlcore/parallel.h"

namespace dlcore::kernels {

template <class T>
void sgd_step(T* p, const T* grad, T* buf, int64_t n, double lr, double momentum, double dampening, bool nesterov,
              double weight_decay, bool first) {
  const T lr_ = static_cast<T>(lr), mom = static_cast<T>(momentum), damp = static_cast<T>(1.0 - dampening),
          wd = static_cast<T>(weight_decay);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= kParallelGrain && !in_parallel_region())
#endif
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (weight_decay != 0.0) g += wd * p[i];
    if (momentum != 0.0) {
      const T b = first ? g : mom * buf[i] + damp * g;
      buf[i] = b;
      g = nesterov ? g + mom * b : b;
    }
    p[i] -= lr_ * g;
  }
}

template <class T>
void adam_step(T* p, const T* grad, T* m, T* v, int64_t n, int64_t t, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool decoupled) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
  const T step = static_cast<T>(lr / bc1), inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), e = static_cast<T>(eps),
          wd = static_cast<T>(weight_decay), decay = static_cast<T>(1.0 - lr * weight_decay);
  const T ob1 = static_cast<T>(1.0 - beta1), ob2 = static_cast<T>(1.0 - beta2);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= kParallelGrain && !in_parallel_region())
#endif
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (weight_decay != 0.0) {
      if (decoupled) p[i] *= decay;
      else g += wd * p[i];
    }
    m[i] = b1 * m[i] + ob1 * g;
    v[i] = b2 * v[i] + ob2 * g * g;
    p[i] -= step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + e);
  }
}

template void sgd_step<float>(float*, const float*, float*, int64_t, double, double, double, bool, double, bool);
template void sgd_step<double>(double*, const double*, double*, int64_t, double, double, double, bool, double, bool);
template void adam_step<float>(float*, const float*, float*, float*, int64_t, int64_t, double, double, double, double,
                               double, bool);
template void adam_step<double>(double*, const double*, double*, double*, int64_t, int64_t, double, double, double,
                                double, double, bool);

}  // namespace dlcore::kernels
