#pragma once
// k-nearest-neighbour search over raw row-major float64 buffers.
#include <cstdint>

namespace dlcore::kernels {

// For each of the M query rows of q (M, D): the indices (and distances) of the k
// nearest of the N reference rows of ref (N, D), nearest first; equal distances
// are ordered by the lower reference index (scikit-learn's brute-force order).
// metric 2: Euclidean (squared distances via ||a||^2 + ||b||^2 - 2 a.b, with GEMM),
// metric 1: Manhattan. Queries are processed in blocks so scratch memory stays
// bounded (block x N distances), whatever M is.
void knn_search(const double* q, const double* ref, int64_t M, int64_t N, int64_t D, int64_t k, int metric,
                int64_t* out_idx, double* out_dist);

}  // namespace dlcore::kernels
