#include "dlcore/kernels/image.h"

#include "dlcore/parallel.h"

namespace dlcore::kernels {

template <class T>
void crop_flip(const T* x, T* y, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OH, int64_t OW,
               const int64_t* top, const int64_t* left, const bool* flip) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N * C * OH * OW >= kParallelGrain && !in_parallel_region())
#endif
  for (int64_t nc = 0; nc < N * C; ++nc) {
    const int64_t n = nc / C;
    const T* xp = x + nc * H * W;
    T* yp = y + nc * OH * OW;
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h = top[n] + i;
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w = left[n] + (flip[n] ? OW - 1 - j : j);
        yp[i * OW + j] = (h >= 0 && h < H && w >= 0 && w < W) ? xp[h * W + w] : T(0);
      }
    }
  }
}

template void crop_flip<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                               const int64_t*, const int64_t*, const bool*);
template void crop_flip<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                const int64_t*, const int64_t*, const bool*);

}  // namespace dlcore::kernels
