#include "dlcore/kernels/knn.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "dlcore/kernels/gemm.h"
#include "dlcore/parallel.h"

namespace dlcore::kernels {

void knn_search(const double* q, const double* ref, int64_t M, int64_t N, int64_t D, int64_t k, int metric,
                int64_t* out_idx, double* out_dist) {
  // Block of queries: keeps the (block, N) distance matrix under ~32 MB.
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(M, (int64_t(4) << 20) / std::max<int64_t>(N, 1)));
  std::vector<double> dist(static_cast<size_t>(block * N));
  std::vector<double> ref_norm;
  if (metric == 2) {
    ref_norm.resize(N);
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += ref[j * D + d] * ref[j * D + d];
      ref_norm[j] = s;
    }
  }
  for (int64_t b0 = 0; b0 < M; b0 += block) {
    const int64_t bm = std::min(block, M - b0);
    if (metric == 2) {
      // dist = -2 q ref^T (parallel GEMM, called outside any OpenMP region), then + norms
      dgemm(false, true, bm, N, D, -2.0, q + b0 * D, D, ref, D, 0.0, dist.data(), N);
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4) if (bm * N * D >= kParallelGrain)
#endif
    for (int64_t i = 0; i < bm; ++i) {
      const double* qi = q + (b0 + i) * D;
      double* di = dist.data() + i * N;
      if (metric == 2) {
        double qn = 0;
        for (int64_t d = 0; d < D; ++d) qn += qi[d] * qi[d];
        for (int64_t j = 0; j < N; ++j) di[j] = std::max(0.0, di[j] + qn + ref_norm[j]);
      } else {
        for (int64_t j = 0; j < N; ++j) {
          const double* rj = ref + j * D;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += std::abs(qi[d] - rj[d]);
          di[j] = s;
        }
      }
      std::vector<int64_t> order(N);
      std::iota(order.begin(), order.end(), 0);
      auto less = [di](int64_t a, int64_t c) { return di[a] < di[c] || (di[a] == di[c] && a < c); };
      const int64_t kk = std::min(k, N);
      std::partial_sort(order.begin(), order.begin() + kk, order.end(), less);
      for (int64_t t = 0; t < kk; ++t) {
        out_idx[(b0 + i) * k + t] = order[t];
        out_dist[(b0 + i) * k + t] = metric == 2 ? std::sqrt(di[order[t]]) : di[order[t]];
      }
    }
  }
}

}  // namespace dlcore::kernels
