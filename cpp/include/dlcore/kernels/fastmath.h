#pragma once
// Vectorisable float32 exp for the hot loops of softmax, cross-entropy and the
// elementwise exp/sigmoid.
//
// Note [Fast exp]
//   exp(x) = 2^n * exp(r) with n = round(x / ln 2), r = x - n ln 2 (|r| <= ln2/2,
//   ln 2 split in two parts for accuracy), exp(r) by a degree-6 Taylor
//   polynomial, 2^n by writing the float exponent bits. Branch-free, so the
//   compiler vectorises loops over it; max error ~2 ulp on [-87, 88] (checked
//   against std::exp in cpp/tests). Inputs are clamped: below -87.3 gives 0,
//   above 88.7 gives inf, NaN stays NaN.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace dlcore::kernels {

inline float exp_f32(float x) {
  const float hi = 88.7228391f, lo = -87.3365448f;
  const bool is_nan = x != x;
  float xc = x < lo ? lo : (x > hi ? hi : x);
  xc = is_nan ? 0.0f : xc;  // no NaN reaches the float -> int conversion
  // round to nearest with the 1.5 * 2^23 trick (vectorisable, unlike nearbyint)
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // in [-126, 128]
  float r = xc - n * 0.693359375f;  // ln2 = 0.693359375 - 2.12194440e-4 (Cody-Waite)
  r = r + n * 2.12194440e-4f;
  // exp(r) ~ 1 + r + r^2/2 + ... + r^6/720
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n from the exponent bits; n = 128 (x near the top) is taken as 2 * 2^127
  const int32_t ni = static_cast<int32_t>(n);
  const bool top = ni > 127;
  const uint32_t bits = static_cast<uint32_t>((top ? 127 : ni) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  float y = p * scale * (top ? 2.0f : 1.0f);
  y = x < lo ? 0.0f : y;
  y = x > hi ? INFINITY : y;
  return is_nan ? x : y;
}

inline double exp_any(double x) { return std::exp(x); }
inline float exp_any(float x) { return exp_f32(x); }

// y[i] = exp(x[i] - shift) over n contiguous values. The float version is
// compiled for AVX-512, AVX2 and baseline x86-64 and picked at run time
// (GCC target_clones), so one build is fast on any x86-64.
void exp_shifted(const float* x, float shift, float* y, int64_t n);
void exp_shifted(const double* x, double shift, double* y, int64_t n);
// The same, returning sum(y) (accumulated in 16 lanes).
float exp_shifted_sum(const float* x, float shift, float* y, int64_t n);
double exp_shifted_sum(const double* x, double shift, double* y, int64_t n);
// max of n >= 1 values (NaN-propagating only in the sense that the result is not
// reliable with NaNs present; callers handle NaN rows through the exp).
float max_of(const float* x, int64_t n);
double max_of(const double* x, int64_t n);

}  // namespace dlcore::kernels
