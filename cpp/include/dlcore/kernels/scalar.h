#pragma once
// Scalar semantics shared by the CPU and CUDA kernels (compiled for the host, and
// for the device under nvcc): wrapping int64 arithmetic, NaN-propagating
// maximum/minimum and the dtype conversions with defined results where C++ has
// undefined behaviour.
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define DLCORE_HD __host__ __device__
#else
#define DLCORE_HD
#endif

namespace dlcore::kernels {

// int64 arithmetic wraps around (as numpy and PyTorch) instead of being UB.
DLCORE_HD inline int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
DLCORE_HD inline int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
DLCORE_HD inline int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}
// base ** e for e >= 0 (checked by the op layer), by squaring, wrapping.
DLCORE_HD inline int64_t ipow(int64_t base, int64_t e) {
  uint64_t result = 1, b = static_cast<uint64_t>(base);
  while (e > 0) {
    if (e & 1) result *= b;
    b *= b;
    e >>= 1;
  }
  return static_cast<int64_t>(result);
}

// numpy.maximum / numpy.minimum: NaN propagates (the first NaN operand is returned).
template <class T>
DLCORE_HD T fmaximum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return a > b ? a : b;
}
template <class T>
DLCORE_HD T fminimum(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return a < b ? a : b;
}

// dst dtype D from src dtype S: to bool is (v != 0); float -> int64 of NaN or
// out-of-range values gives INT64_MIN (as numpy on x86); else static_cast.
template <class S, class D>
DLCORE_HD D convert(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    return v != S(0);
  } else if constexpr (std::is_floating_point_v<S> && std::is_same_v<D, int64_t>) {
    return (v >= S(-9.2233720368547758e18) && v < S(9.2233720368547758e18)) ? static_cast<int64_t>(v)
                                                                            : INT64_MIN;
  } else {
    return static_cast<D>(v);
  }
}

}  // namespace dlcore::kernels
