// Vectorised exp loops (Note [Fast exp] in fastmath.h).
#include "dlcore/kernels/fastmath.h"

namespace dlcore::kernels {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DLCORE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DLCORE_CLONES
#endif

DLCORE_CLONES void exp_shifted(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i] - shift);
}

void exp_shifted(const double* x, double shift, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i] - shift);
}

namespace {
template <class T, class F>
inline T lanes_reduce(const T* x, int64_t n, T init, F f) {
  T lane[16];
  for (T& l : lane) l = init;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) lane[l] = f(lane[l], x[i + l]);
  T r = init;
  for (; i < n; ++i) r = f(r, x[i]);
  for (T l : lane) r = f(r, l);
  return r;
}
}  // namespace

DLCORE_CLONES float exp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = exp_f32(x[i] - shift);
  return lanes_reduce(y, n, 0.0f, [](float a, float b) { return a + b; });
}

double exp_shifted_sum(const double* x, double shift, double* y, int64_t n) {
  exp_shifted(x, shift, y, n);
  return lanes_reduce(y, n, 0.0, [](double a, double b) { return a + b; });
}

DLCORE_CLONES float max_of(const float* x, int64_t n) {
  return lanes_reduce(x, n, -INFINITY, [](float a, float b) { return b > a ? b : a; });
}

double max_of(const double* x, int64_t n) {
  return lanes_reduce(x, n, -static_cast<double>(INFINITY), [](double a, double b) { return b > a ? b : a; });
}

}  // namespace dlcore::kernels
