// matmul with numpy semantics: 1-D operands get a temporary unit dim, batch dims
// broadcast, the product of each (M,K)x(K,N) pair goes to the GEMM kernel.
#include <algorithm>

#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/ops.h"

namespace dlcore {

namespace {

// How a (rows, cols) matrix with element strides (sr, sc) is handed to GEMM:
// row-major (trans = false) or column-major (trans = true) with leading dim ld.
// Returns false when neither stride is unit (the caller copies it contiguous).
bool gemm_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, bool& trans, int64_t& ld) {
  if ((sc == 1 || cols == 1) && (rows == 1 || sr >= std::max<int64_t>(cols, 1))) {
    trans = false;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : sr;
    return true;
  }
  if ((sr == 1 || rows == 1) && (cols == 1 || sc >= std::max<int64_t>(rows, 1))) {
    trans = true;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : sc;
    return true;
  }
  return false;
}

}  // namespace

Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in) {
  DLCORE_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, ValueError,
               "matmul: both operands need at least 1 dim, got shapes ", shape_str(a_in.shape()), " and ",
               shape_str(b_in.shape()));
  DLCORE_CHECK(a_in.device() == b_in.device(), ValueError, "matmul: expected tensors on the same device, got ",
               a_in.device().str(), " and ", b_in.device().str());
  DType dt = promote(a_in.dtype(), b_in.dtype());
  DLCORE_CHECK(dt != DType::Bool, TypeError, "matmul: bool tensors are not supported");
  Tensor a = to_dtype(a_in, dt), b = to_dtype(b_in, dt);
  const bool a1 = a.dim() == 1, b1 = b.dim() == 1;
  if (a1) a = unsqueeze(a, 0);
  if (b1) b = unsqueeze(b, -1);
  const int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  DLCORE_CHECK(K == K2, ValueError, "matmul: shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()),
               " are not aligned: ", K, " (last dim of the first) != ", K2, " (",
               b1 ? "only" : "second-to-last", " dim of the second)");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes(ba, bb);
  } catch (const ValueError&) {
    throw ValueError(str("matmul: batch dims of shapes ", shape_str(a_in.shape()), " and ",
                         shape_str(b_in.shape()), " cannot be broadcast together"));
  }
  bool ta = false, tb = false;
  int64_t lda = 0, ldb = 0;
  if (!gemm_layout(M, K, a.strides()[a.dim() - 2], a.strides()[a.dim() - 1], ta, lda)) {
    a = contiguous(a);
    gemm_layout(M, K, a.strides()[a.dim() - 2], a.strides()[a.dim() - 1], ta, lda);
  }
  if (!gemm_layout(K, N, b.strides()[b.dim() - 2], b.strides()[b.dim() - 1], tb, ldb)) {
    b = contiguous(b);
    gemm_layout(K, N, b.strides()[b.dim() - 2], b.strides()[b.dim() - 1], tb, ldb);
  }
  Shape ash = batch, bsh = batch;
  ash.insert(ash.end(), {M, K});
  bsh.insert(bsh.end(), {K, N});
  a = expand(a, ash);
  b = expand(b, bsh);
  Shape osh = batch;
  osh.insert(osh.end(), {M, N});
  Tensor out = Tensor::empty(osh, dt, a.device());

  // Batch offsets (element units) of every matrix pair.
  int64_t nb = 1;
  for (int64_t d : batch) nb *= d;
  const int64_t nbd = static_cast<int64_t>(batch.size());
  std::vector<int64_t> offa(nb), offb(nb);
  {
    std::vector<int64_t> idx(nbd, 0);
    for (int64_t i = 0; i < nb; ++i) {
      int64_t oa = 0, ob = 0;
      for (int64_t d = 0; d < nbd; ++d) {
        oa += idx[d] * a.strides()[d];
        ob += idx[d] * b.strides()[d];
      }
      offa[i] = oa;
      offb[i] = ob;
      for (int64_t d = nbd - 1; d >= 0 && ++idx[d] == batch[d]; --d) idx[d] = 0;
    }
  }
  if (out.numel() > 0)
    backend_for(out.device()).matmul(dt, ta, tb, M, N, K, a.raw_data(), lda, offa.data(), b.raw_data(), ldb,
                                     offb.data(), out.raw_data(), nb);
  if (a1 && b1) return reshape(out, Shape(batch));
  if (a1) return squeeze(out, std::vector<int64_t>{-2});
  if (b1) return squeeze(out, std::vector<int64_t>{-1});
  return out;
}


namespace {
RegisterOp reg_matmul("matmul");

// Gradients of out = a @ b for any ranks: 1-D operands get their unit dim back,
// broadcast batch dims are summed away.
//   da = sum_to(g @ b^T, a.shape), db = sum_to(a^T @ g, b.shape)
std::vector<Tensor> matmul_vjp(const Tensor& a, const Tensor& b, const Tensor& g_in) {
  const bool a1 = a.dim() == 1, b1 = b.dim() == 1;
  const Tensor a2 = a1 ? unsqueeze(a, 0) : a;
  const Tensor b2 = b1 ? unsqueeze(b, -1) : b;
  Tensor g = g_in;
  if (a1) g = unsqueeze(g, g.dim() - (b1 ? 0 : 1));
  if (b1) g = unsqueeze(g, -1);
  Tensor da, db;
  if (a.requires_grad()) da = reshape(sum_to(matmul(g, transpose(b2, -1, -2)), a2.shape()), a.shape());
  if (b.requires_grad()) db = reshape(sum_to(matmul(transpose(a2, -1, -2), g), b2.shape()), b.shape());
  return {da, db};
}
}  // namespace

// matmul: out = a @ b.   vjp: see matmul_vjp.   jvp: ta @ b + a @ tb
Tensor matmul(const Tensor& a, const Tensor& b) {
  return differentiable("matmul", {a, b}, [&] { return matmul_raw(a, b); },
      [a, b](const Tensor& g) { return matmul_vjp(a, b, g); },
      [a, b](const std::vector<Tensor>& t) {
        return tangent_sum({if_tangent(t[0], [&](const Tensor& v) { return matmul(v, b); }),
                            if_tangent(t[1], [&](const Tensor& v) { return matmul(a, v); })});
      }, {a, b});
}

}  // namespace dlcore
