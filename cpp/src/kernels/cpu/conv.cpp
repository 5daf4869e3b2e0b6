// CPU 2-D convolution for dlcore: forward, backward w.r.t. input, backward w.r.t. weight.
//
// Note [Conv algorithm]
// ~~~~~~~~~~~~~~~~~~~~~
// Everything is lowered onto our packed GEMM (gemm.h). Per group g (Cg = C/groups input
// channels, Kg = K/groups output channels, CRS = Cg*R*S):
//
// * Forward:   Y_g (Kg x cols) = W_g (Kg x CRS) @ col (CRS x cols), col = im2col(x).
//   "cols" is one work item's output pixels: a band of output rows of one image, or the
//   whole P*Q of several images (see Note [Conv tiling]). 1x1 / stride 1 / pad 0 kernels
//   use x directly as the B operand (no im2col) when the item is a single image.
// * Backward input: dcol (CRS x cols) = W_g^T @ dy_tile, then col2im (scatter-add) into dx.
//   Work items are whole images or groups of images (overlapping input rows of one image's
//   bands are always written by the same thread), several images per GEMM for small images.
//   Alternative, used only when Kg < 8 <= 16 <= Cg and stride 1: a stride-1 transposed conv is
//   an ordinary conv of dy with the flipped, (K,C)-transposed weight and padding dil*(R-1)-pad,
//   run through the forward path (GEMM M = Cg, inner dim Kg*R*S). Measurements where the choice
//   is made (conv2d_backward_input).
// * Backward weight: dW_g (Kg x CRS) += dy_tile (Kg x cols) @ col^T, accumulated into a
//   per-thread partial buffer, reduced in thread order at the end (no atomics, no races).
// * Short columns (CRS < 128, e.g. C=1 5x5, C=3 3x3): both backward passes skip the col buffer
//   (Note [Conv fused input gradient] at conv2d_backward_input, Note [Conv fused weight
//   gradient] at conv2d_backward_weight): dx is computed per L1/L2-sized block of output rows
//   (dcol block = packed W^T @ dy through detail::gemm_packed_a, then col2im of the block), and
//   dW packs col^T panels straight from x (pack_colT_panel) with dy as the packed A operand.
// * Few input channels / small images (e.g. C=1 5x5 on 28x28, C=6 5x5 on 12x12, C=3 3x3): the
//   same lowering with several images per GEMM (a long N, or inner, dimension). Measured at
//   2 threads, fwd+bwd GFLOP/s: (64,1,28,28)->6 ~51, (64,6,12,12)->16 ~65-71,
//   (128,3,32,32)->32 ~110 (PyTorch: ~13-17, ~75-95, ~75-84). A direct (non-GEMM) kernel was
//   not needed to reach PyTorch on C=1 / C=3; on (64,6,12,12)->16 the remaining cost is
//   im2col of short rows (Q=8) and GEMM packing (~25% + ~30% of the forward in perf).
// * Per shape, the plan (make_plan) picks: row bands of one image when CRS*P*Q exceeds the
//   budget ((32,64,56,56)->64: 576 x 3136 col split into 14 bands of 4 rows), one image per
//   item when it fits ((128,32,16,16)->64), several images per item when it is small (the
//   three small shapes); 1x1 stride-1 unpadded convs skip im2col (x is the GEMM B operand).
//
// Note [Conv fused im2col]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// The forward, when one image's im2col fits kColBudgetBytes (the four smaller benchmark shapes),
// never writes the col buffer: the weights are packed once per call (detail::pack_a_all, shared
// read-only by the threads) and detail::gemm_packed_a asks pack_im2col_panel for one kc x NR
// micro-panel of col at a time, built straight from x into an L1-sized buffer (AVX-512 masked
// loads/stores when the GEMM runs AVX-512 and stride_w == 1). Work items are (image, band of
// output rows), split over threads; no per-image A packing, no col write/read, no B re-pack.
// Measured at 1 thread, forward GFLOP/s (old -> fused, shared noisy machine, best of 5):
// (64,1,28,28)->6 ~27 -> ~40, (64,6,12,12)->16 ~34 -> ~54, (128,3,32,32)->32 ~58 -> ~90,
// (128,32,16,16)->64 ~99 -> ~125; on (32,64,56,56)->64 (col 4 MiB per image) the banded path
// below stayed 3-6% faster, so large images keep it. The backward passes are unchanged.
//
// Note [Conv tiling]
// ~~~~~~~~~~~~~~~~~~
// The im2col buffer of one work item is bounded (kColBudgetBytes, thread-local): when one image's
// col (CRS*P*Q) is larger it is split into bands of output rows (so the col tile stays in L2
// while the GEMM packs it), when it is smaller several images are lowered together so that the
// GEMM sees a long N (or K for the weight gradient) dimension and its fixed per-call cost
// (packing, dispatch) is amortised. Scratch is therefore O(budget) per thread whatever N, H, W.
//
// Note [Conv threading]
// ~~~~~~~~~~~~~~~~~~~~~
// Work items (image groups or image row-bands) are split into contiguous chunks, one per
// thread, in a single `omp parallel` region at the outermost level; the GEMMs called inside run
// serially (gemm.h runs serial inside a parallel region). When there are fewer items than
// threads (e.g. batch 1, one band) the items are processed in order from serial code and the
// GEMM itself runs in parallel. Never nested.

#include "dlcore/kernels/conv.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "dlcore/kernels/gemm.h"
#include "gemm_internal.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(DLCORE_GEMM_NO_SIMD)
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore::kernels {
namespace {

// Shapes: op(A) (M,K), op(B) (K,N), C (M,N). Overloads dispatching to sgemm/dgemm.
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                 int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  dgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

template <class T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<T> bufs[3];
  std::vector<T>& b = bufs[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

// im2col copies many short rows (Q = 8..56 floats); GCC turns the copy loop into a memmove
// call, which was ~45% of the forward time for (64,6,12,12)->16 5x5. Keep it an inline loop.
#if defined(__GNUC__) && !defined(__clang__)
#define DLCORE_CONV_NO_MEMCPY_IDIOM __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DLCORE_CONV_NO_MEMCPY_IDIOM
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define DLCORE_CONV_IM2COL_ATTR \
  __attribute__((aligned(64), optimize("no-tree-loop-distribute-patterns", "align-loops=32")))
#else
#define DLCORE_CONV_IM2COL_ATTR DLCORE_CONV_NO_MEMCPY_IDIOM
#endif
// Hot short-row loops (im2col / col2im) measured ~10% apart depending on where unrelated code
// edits happened to place them; start their functions on a cache line.
#if defined(__GNUC__)
#define DLCORE_CONV_ALIGN_FN __attribute__((aligned(64)))
#else
#define DLCORE_CONV_ALIGN_FN
#endif

// Valid output column range [qlo, qhi) for kernel column offset `off` = s*dil - pad:
// iw = q*stride + off must lie in [0, W).
inline void valid_range(int64_t off, int64_t stride, int64_t W, int64_t Q, int64_t* qlo,
                        int64_t* qhi) {
  int64_t lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t hi = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / stride + 1;
  lo = std::min(lo, Q);
  hi = std::min(hi, Q);
  if (hi < lo) hi = lo;
  *qlo = lo;
  *qhi = hi;
}

// Shapes: xn (C,H,W) one image; col (Cg*R*S rows, leading dim ldcol). Writes output rows
// [p0,p1) of input channels [c0,c0+Cg) at columns [0, (p1-p0)*Q) of col.
template <class T>
DLCORE_CONV_IM2COL_ATTR void im2col(const T* xn, const Conv2dShape& s, int64_t c0, int64_t Cg, int64_t p0, int64_t p1,
            T* col, int64_t ldcol) {
  const int64_t H = s.H, W = s.W, Q = s.Q, R = s.R, S = s.S;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  for (int64_t c = 0; c < Cg; ++c) {
    const T* xc = xn + (c0 + c) * H * W;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t q_s = 0; q_s < S; ++q_s) {
        T* dst = col + ((c * R + r) * S + q_s) * ldcol;
        const int64_t off = q_s * s.dil_w - s.pad_w;
        int64_t qlo, qhi;
        valid_range(off, sw, W, Q, &qlo, &qhi);
        for (int64_t p = p0; p < p1; ++p, dst += Q) {
          const int64_t ih = p * sh - s.pad_h + r * s.dil_h;
          if (ih < 0 || ih >= H) {
            std::fill(dst, dst + Q, T(0));
            continue;
          }
          for (int64_t q = 0; q < qlo; ++q) dst[q] = T(0);
          if (qhi > qlo) {
            const T* src = xc + ih * W + (qlo * sw + off);  // input of output column qlo
            if (sw == 1) {
              // Rows are short (Q = 8..56 here); a plain loop beats a memcpy call.
              const int64_t n = qhi - qlo;
              T* d = dst + qlo;
              for (int64_t q = 0; q < n; ++q) d[q] = src[q];
            } else {
              for (int64_t q = qlo; q < qhi; ++q) dst[q] = src[(q - qlo) * sw];
            }
          }
          for (int64_t q = qhi; q < Q; ++q) dst[q] = T(0);
        }
      }
    }
  }
}

// Shapes: col (Cg*R*S rows, leading dim ldcol) for output rows [p0,p1); dxn (C,H,W) one image.
// Adds the columns back into input channels [c0,c0+Cg) (transpose of im2col).
template <class T>
void col2im_add(const T* col, int64_t ldcol, const Conv2dShape& s, int64_t c0, int64_t Cg,
                int64_t p0, int64_t p1, T* dxn) {
  const int64_t H = s.H, W = s.W, Q = s.Q, R = s.R, S = s.S;
  const int64_t sh = s.stride_h, sw = s.stride_w;
  for (int64_t c = 0; c < Cg; ++c) {
    T* xc = dxn + (c0 + c) * H * W;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t q_s = 0; q_s < S; ++q_s) {
        const T* src = col + ((c * R + r) * S + q_s) * ldcol;
        const int64_t off = q_s * s.dil_w - s.pad_w;
        int64_t qlo, qhi;
        valid_range(off, sw, W, Q, &qlo, &qhi);
        for (int64_t p = p0; p < p1; ++p, src += Q) {
          const int64_t ih = p * sh - s.pad_h + r * s.dil_h;
          if (ih < 0 || ih >= H || qhi <= qlo) continue;
          T* dst = xc + ih * W + (qlo * sw + off);  // input of output column qlo
          if (sw == 1) {
            for (int64_t q = qlo; q < qhi; ++q) dst[q - qlo] += src[q];
          } else {
            for (int64_t q = qlo; q < qhi; ++q) dst[(q - qlo) * sw] += src[q];
          }
        }
      }
    }
  }
}

// Per-thread im2col tile budget (Note [Conv tiling]). Measured at 2 threads, fwd+bwd GFLOP/s with
// 128K / 512K / 2M / 8M bytes: (32,64,56,56)->64 3x3: 167 / 224 / 203 / 191;
// (128,32,16,16)->64 3x3: 173 / 194 / 173 / 161; (64,6,12,12)->16 5x5: flat (61..66).
constexpr int64_t kColBudgetBytes = 512 * 1024;

// One work item: images [n0, n0+nimg) and output rows [p0, p1) (p0=0, p1=P when nimg > 1).
struct Item {
  int64_t n0, nimg, p0, p1;
};

// The (CRS, cols) column operand of work item `it` for channels c0 .. c0+Cg-1: the input
// itself for an unpadded stride-1 1x1 conv of one image (ld = H*W), else im2col into `col`
// (ld = cols). Shared by the forward and the weight gradient.
template <class T>
const T* col_operand(const T* x, const Conv2dShape& s, const Item& it, int64_t c0, int64_t Cg, bool direct,
                     T* col, int64_t& ld) {
  const int64_t HW = s.H * s.W, rows = it.p1 - it.p0, cols = it.nimg * rows * s.Q;
  if (direct) {
    ld = HW;
    return x + it.n0 * s.C * HW + c0 * HW + it.p0 * s.Q;
  }
  for (int64_t j = 0; j < it.nimg; ++j)
    im2col(x + (it.n0 + j) * s.C * HW, s, c0, Cg, it.p0, it.p1, col + j * rows * s.Q, cols);
  ld = cols;
  return col;
}

struct Plan {
  int64_t nb;      // images per item (> 1 only when rows == P)
  int64_t rows;    // output rows per item
  int64_t bands;   // ceil(P / rows)
  int64_t items;   // number of work items
  bool parallel;   // items split over threads (serial GEMMs) vs serial items, parallel GEMM

  Item item(int64_t i, const Conv2dShape& s) const {
    if (nb > 1 || bands == 1) {
      const int64_t n0 = i * nb;
      return {n0, std::min(nb, s.N - n0), 0, s.P};
    }
    const int64_t n = i / bands, b = i % bands;
    return {n, 1, b * rows, std::min(s.P, (b + 1) * rows)};
  }
};

template <class T>
Plan make_plan(const Conv2dShape& s, int nth, bool whole_images) {
  const int64_t CRS = s.C / s.groups * s.R * s.S;
  const int64_t budget = std::max<int64_t>(1, kColBudgetBytes / static_cast<int64_t>(sizeof(T)));
  const int64_t per_row = std::max<int64_t>(1, CRS * s.Q);
  Plan pl{};
  pl.rows = whole_images ? s.P : std::max<int64_t>(1, std::min(s.P, budget / per_row));
  pl.bands = (s.P + pl.rows - 1) / pl.rows;
  pl.rows = (s.P + pl.bands - 1) / pl.bands;  // even bands
  pl.nb = 1;
  if (pl.bands == 1) {
    const int64_t per_img = std::max<int64_t>(1, per_row * s.P);
    // Several images per item when one image is small, but keep >= 2 items per thread and
    // make the item count a multiple of the thread count (balanced chunks).
    const int64_t cap = std::max<int64_t>(1, s.N / (2 * static_cast<int64_t>(nth)));
    const int64_t nb0 = std::max<int64_t>(1, std::min({budget / per_img, cap, s.N}));
    if (nb0 > 1) {
      int64_t items = (s.N + nb0 - 1) / nb0;
      items = (items + nth - 1) / nth * nth;
      pl.nb = (s.N + items - 1) / items;
    }
  } else if (nth > 1 && (s.N * pl.bands) % nth != 0 && s.N * pl.bands < 4 * nth) {
    // Few items: more bands so that every thread gets the same number of items.
    const int64_t want = (s.N * pl.bands + nth - 1) / nth * nth;
    if (want % s.N == 0 && want / s.N <= s.P) {
      pl.bands = want / s.N;
      pl.rows = (s.P + pl.bands - 1) / pl.bands;
      pl.bands = (s.P + pl.rows - 1) / pl.rows;
    }
  }
  pl.items = pl.nb > 1 ? (s.N + pl.nb - 1) / pl.nb : s.N * pl.bands;
  pl.parallel = nth > 1 && pl.items >= nth && (pl.items % nth == 0 || pl.items >= 4 * nth);
  return pl;
}

// Runs body(item, tid) for every item; see Note [Conv threading].
template <class F>
void run_items(const Plan& pl, const Conv2dShape& s, int nth, F&& body) {
#ifdef _OPENMP
  if (pl.parallel) {
#pragma omp parallel num_threads(nth)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t i0 = pl.items * t / nt, i1 = pl.items * (t + 1) / nt;
      for (int64_t i = i0; i < i1; ++i) body(pl.item(i, s), t);
    }
    return;
  }
#endif
  (void)nth;
  for (int64_t i = 0; i < pl.items; ++i) body(pl.item(i, s), 0);
}

template <class T>
void forward_impl(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q;
  const bool direct_1x1 = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                          s.pad_h == 0 && s.pad_w == 0;
  const int nth = max_threads();
  const Plan pl = make_plan<T>(s, nth, false);
  run_items(pl, s, nth, [&](const Item& it, int) {
    const int64_t rows = it.p1 - it.p0, cols = it.nimg * rows * s.Q;
    const bool single = it.nimg == 1;
    T* col = nullptr;
    if (!(direct_1x1 && single)) col = scratch<T>(0, CRS * cols);
    T* ybuf = single ? nullptr : scratch<T>(1, Kg * cols);
    for (int64_t g = 0; g < G; ++g) {
      int64_t ldb;
      const T* B = col_operand(x, s, it, g * Cg, Cg, direct_1x1 && single, col, ldb);
      const T* A = w + g * Kg * CRS;
      if (single) {
        T* C = y + it.n0 * s.K * PQ + g * Kg * PQ + it.p0 * s.Q;
        gemm(false, false, Kg, cols, CRS, T(1), A, CRS, B, ldb, T(0), C, PQ);
        if (bias) {
          for (int64_t k = 0; k < Kg; ++k) {
            const T b = bias[g * Kg + k];
            T* yr = C + k * PQ;
            for (int64_t j = 0; j < cols; ++j) yr[j] += b;
          }
        }
      } else {
        gemm(false, false, Kg, cols, CRS, T(1), A, CRS, B, ldb, T(0), ybuf, cols);
        for (int64_t j = 0; j < it.nimg; ++j) {
          for (int64_t k = 0; k < Kg; ++k) {
            const T b = bias ? bias[g * Kg + k] : T(0);
            const T* src = ybuf + k * cols + j * PQ;
            T* dst = y + (it.n0 + j) * s.K * PQ + (g * Kg + k) * PQ;
            for (int64_t e = 0; e < PQ; ++e) dst[e] = src[e] + b;
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Fused im2col + GEMM (Note [Conv fused im2col])
// ---------------------------------------------------------------------------

// One row k = (c, r, s) of the virtual im2col matrix: input element of output pixel (p, q) is
// x[xoff + (p*sh + rowoff)*W + q*sw] when 0 <= p*sh + rowoff < H and qlo <= q < qhi, else 0.
struct ColRow {
  int64_t xoff;    // c*H*W + s*dil_w - pad_w
  int64_t rowoff;  // r*dil_h - pad_h
  int64_t qlo, qhi;
};

std::vector<ColRow> col_rows(const Conv2dShape& s, int64_t Cg) {
  std::vector<ColRow> rows(static_cast<size_t>(Cg * s.R * s.S));
  size_t i = 0;
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t q_s = 0; q_s < s.S; ++q_s, ++i) {
        const int64_t off = q_s * s.dil_w - s.pad_w;
        ColRow& cr = rows[i];
        cr.xoff = c * s.H * s.W + off;
        cr.rowoff = r * s.dil_h - s.pad_h;
        valid_range(off, s.stride_w, s.W, s.Q, &cr.qlo, &cr.qhi);
      }
  return rows;
}

template <class T>
struct Im2colPanelCtx {
  const T* xg;          // image n, first channel of the group
  const ColRow* rows;   // per k (Cg*R*S)
  int64_t col0;         // output pixel index of GEMM column 0
  int64_t H, W, Q, sh, sw;
};

// PackBPanel for the forward: im2col of output pixels [col0+n0, col0+n0+nr) x rows [k0, k0+kc)
// written straight into the packed kc x NR panel.
template <class T>
DLCORE_CONV_NO_MEMCPY_IDIOM void pack_im2col_panel(const void* vctx, int64_t k0, int64_t kc,
                                                   int64_t n0, int nr, int NR, T* dst) {
  const Im2colPanelCtx<T>& cx = *static_cast<const Im2colPanelCtx<T>*>(vctx);
  // The panel's columns as runs within one output row: [j, j+len) <- pixels (p, q..q+len).
  struct Seg {
    int j, len;
    int64_t ph, q;  // p*sh, first q
  };
  Seg seg[64];
  int ns = 0;
  for (int j = 0; j < nr && ns < 64;) {
    const int64_t pix = cx.col0 + n0 + j, p = pix / cx.Q, q = pix % cx.Q;
    const int len = static_cast<int>(std::min<int64_t>(cx.Q - q, nr - j));
    seg[ns++] = {j, len, p * cx.sh, q};
    j += len;
  }
  const int64_t H = cx.H, W = cx.W, sw = cx.sw;
  for (int64_t k = 0; k < kc; ++k, dst += NR) {
    const ColRow& cr = cx.rows[k0 + k];
    for (int t = 0; t < ns; ++t) {
      const Seg& sg = seg[t];
      T* d = dst + sg.j;
      const int64_t ih = sg.ph + cr.rowoff;
      const int len = sg.len;
      if (ih < 0 || ih >= H) {
        for (int e = 0; e < len; ++e) d[e] = T(0);
        continue;
      }
      const int64_t qa = std::min(std::max(cr.qlo, sg.q), sg.q + len);
      const int64_t qb = std::max(std::min(cr.qhi, sg.q + len), qa);
      const int a = static_cast<int>(qa - sg.q), b = static_cast<int>(qb - sg.q);
      for (int e = 0; e < a; ++e) d[e] = T(0);
      const T* src = cx.xg + cr.xoff + ih * W + qa * sw;
      if (sw == 1) {
        for (int e = a; e < b; ++e) d[e] = src[e - a];
      } else {
        for (int e = a; e < b; ++e) d[e] = src[(e - a) * sw];
      }
      for (int e = b; e < len; ++e) d[e] = T(0);
    }
    for (int e = nr; e < NR; ++e) dst[e] = T(0);
  }
}

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && !defined(DLCORE_GEMM_NO_SIMD)
#define DLCORE_CONV_AVX512 1
// pack_im2col_panel with AVX-512 masked loads/stores (float NR = 32, double NR = 16, i.e. two
// zmm per packed row): each row is zeroed with two stores, then every run of valid input
// elements is one or two masked load/store pairs (masked-off lanes are never read). Used only
// when the GEMM dispatch picked AVX-512 (gemm_isa()), stride_w == 1.
template <class T>
__attribute__((target("avx512f"))) void pack_im2col_panel_avx512(const void* vctx, int64_t k0,
                                                                 int64_t kc, int64_t n0, int nr,
                                                                 int NR, T* dst) {
  constexpr int L = 64 / static_cast<int>(sizeof(T));  // lanes per zmm
  const Im2colPanelCtx<T>& cx = *static_cast<const Im2colPanelCtx<T>*>(vctx);
  struct Seg {
    int j, len;
    int64_t ph, q;
  };
  Seg seg[2 * L];
  int ns = 0;
  for (int j = 0; j < nr && ns < 2 * L;) {
    const int64_t pix = cx.col0 + n0 + j, p = pix / cx.Q, q = pix % cx.Q;
    const int len = static_cast<int>(std::min<int64_t>(cx.Q - q, nr - j));
    seg[ns++] = {j, len, p * cx.sh, q};
    j += len;
  }
  const int64_t H = cx.H, W = cx.W;
  (void)NR;  // == 2 * L
  for (int64_t k = 0; k < kc; ++k, dst += 2 * L) {
    const ColRow& cr = cx.rows[k0 + k];
    if constexpr (sizeof(T) == 4) {
      _mm512_store_ps(dst, _mm512_setzero_ps());
      _mm512_store_ps(dst + L, _mm512_setzero_ps());
    } else {
      _mm512_store_pd(dst, _mm512_setzero_pd());
      _mm512_store_pd(dst + L, _mm512_setzero_pd());
    }
    for (int t = 0; t < ns; ++t) {
      const Seg& sg = seg[t];
      const int64_t ih = sg.ph + cr.rowoff;
      if (ih < 0 || ih >= H) continue;
      const int64_t qa = std::max(cr.qlo, sg.q);
      const int64_t qb = std::min(cr.qhi, sg.q + sg.len);
      if (qb <= qa) continue;
      T* d = dst + sg.j + (qa - sg.q);
      const T* src = cx.xg + cr.xoff + ih * W + qa;
      int n = static_cast<int>(qb - qa);
      while (n > 0) {
        const int m = std::min(n, L);
        if constexpr (sizeof(T) == 4) {
          const __mmask16 mk = static_cast<__mmask16>(m == 16 ? 0xFFFFu : (1u << m) - 1u);
          _mm512_mask_storeu_ps(d, mk, _mm512_maskz_loadu_ps(mk, src));
        } else {
          const __mmask8 mk = static_cast<__mmask8>((1u << m) - 1u);
          _mm512_mask_storeu_pd(d, mk, _mm512_maskz_loadu_pd(mk, src));
        }
        d += m;
        src += m;
        n -= m;
      }
    }
  }
}
#else
#define DLCORE_CONV_AVX512 0
#endif

// The im2col panel packer for this run: AVX-512 when the GEMM uses it and stride_w == 1.
template <class T>
detail::PackBPanel<T> im2col_packer(const Conv2dShape& s) {
#if DLCORE_CONV_AVX512
  static const bool avx512 = std::strcmp(gemm_isa(), "avx512") == 0 &&
                             detail::gemm_tile<T>().nr == 128 / static_cast<int>(sizeof(T));
  if (avx512 && s.stride_w == 1) return &pack_im2col_panel_avx512<T>;
#else
  (void)s;
#endif
  return &pack_im2col_panel<T>;
}

// Forward through gemm_packed_a: weights packed once per call, im2col fused into the B packing,
// one work item per (image, band of output rows). See Note [Conv fused im2col].
template <class T>
void forward_fused(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q, HW = s.H * s.W;
  const int nth = max_threads();
  const int64_t asz = detail::packed_a_size<T>(Kg, CRS);
  std::vector<T> ap(static_cast<size_t>(asz * G));
  for (int64_t g = 0; g < G; ++g)
    detail::pack_a_all<T>(false, Kg, CRS, w + g * Kg * CRS, CRS, ap.data() + g * asz);
  const std::vector<ColRow> rows = col_rows(s, Cg);
  const detail::PackBPanel<T> packer = im2col_packer<T>(s);
  int64_t bands = 1;
  if (nth > 1 && s.N % nth != 0 && s.N < 4 * nth) bands = std::min<int64_t>(s.P, nth);
  Plan pl{};
  pl.nb = 1;
  pl.rows = (s.P + bands - 1) / bands;
  pl.bands = (s.P + pl.rows - 1) / pl.rows;
  pl.items = s.N * pl.bands;
  pl.parallel = nth > 1 && pl.items >= nth;
  run_items(pl, s, nth, [&](const Item& it, int) {
    const int64_t col0 = it.p0 * s.Q, cols = (it.p1 - it.p0) * s.Q;
    for (int64_t g = 0; g < G; ++g) {
      const Im2colPanelCtx<T> ctx{x + it.n0 * s.C * HW + g * Cg * HW, rows.data(), col0,
                                  s.H, s.W, s.Q, s.stride_h, s.stride_w};
      T* C = y + it.n0 * s.K * PQ + g * Kg * PQ + col0;
      detail::gemm_packed_a<T>(Kg, cols, CRS, ap.data() + g * asz, packer, &ctx,
                               T(0), C, PQ);
      if (bias) {
        for (int64_t k = 0; k < Kg; ++k) {
          const T b = bias[g * Kg + k];
          T* yr = C + k * PQ;
          for (int64_t j = 0; j < cols; ++j) yr[j] += b;
        }
      }
    }
  });
}

template <class T>
DLCORE_CONV_ALIGN_FN void backward_input_col2im(const T* dy, const T* w, T* dx, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q, CHW = s.C * s.H * s.W;
  const int nth = max_threads();
  // Items are groups of whole images; when one image's col exceeds the budget the item is one
  // image whose row bands run in order on one thread (their input rows overlap).
  Plan pl = make_plan<T>(s, nth, false);
  const int64_t rows = pl.rows, bands = pl.bands;
  if (bands > 1) {
    pl.bands = 1;
    pl.items = s.N;
    pl.parallel = nth > 1 && s.N >= nth && (s.N % nth == 0 || s.N >= 4 * nth);
  }
  run_items(pl, s, nth, [&](const Item& it, int) {
    T* dxn = dx + it.n0 * CHW;
    std::fill(dxn, dxn + it.nimg * CHW, T(0));
    const int64_t maxcols = it.nimg * std::min(rows, s.P) * s.Q;
    T* col = scratch<T>(0, CRS * maxcols);
    T* dybuf = it.nimg > 1 ? scratch<T>(1, Kg * maxcols) : nullptr;
    for (int64_t b = 0; b < bands; ++b) {
      const int64_t p0 = b * rows, p1 = std::min(s.P, p0 + rows);
      const int64_t cols = it.nimg * (p1 - p0) * s.Q;
      for (int64_t g = 0; g < G; ++g) {
        const T* B;
        int64_t ldb;
        if (it.nimg == 1) {
          B = dy + it.n0 * s.K * PQ + g * Kg * PQ + p0 * s.Q;
          ldb = PQ;
        } else {
          for (int64_t j = 0; j < it.nimg; ++j)
            for (int64_t k = 0; k < Kg; ++k)
              std::memcpy(dybuf + k * cols + j * PQ,
                          dy + (it.n0 + j) * s.K * PQ + (g * Kg + k) * PQ,
                          sizeof(T) * static_cast<size_t>(PQ));
          B = dybuf;
          ldb = cols;
        }
        gemm(true, false, CRS, cols, Kg, T(1), w + g * Kg * CRS, CRS, B, ldb, T(0), col, cols);
        for (int64_t j = 0; j < it.nimg; ++j)
          col2im_add(col + j * PQ, cols, s, g * Cg, Cg, p0, p1, dxn + j * CHW);
      }
    }
  });
}


// Fixed-order reduction of the per-thread weight-gradient partials:
// dw = dw + part_1 + ... + part_{nparts-1} (element-parallel, deterministic).
template <class T>
void reduce_partials(T* dw, const T* part, int64_t wsize, int nparts, int nth) {
  if (nparts <= 1) return;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nth) schedule(static) if (wsize >= 16384)
#endif
  for (int64_t e = 0; e < wsize; ++e) {
    T a = dw[e];
    for (int t = 1; t < nparts; ++t) a += part[static_cast<size_t>((t - 1) * wsize + e)];
    dw[e] = a;
  }
  (void)nth;
}

template <class T>
void backward_weight_impl(const T* x, const T* dy, T* dw, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q;
  const int64_t wsize = s.K * CRS;
  const bool direct_1x1 = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                          s.pad_h == 0 && s.pad_w == 0;
  const int nth = max_threads();
  const Plan pl = make_plan<T>(s, nth, false);
  const int nparts = pl.parallel ? nth : 1;
  // Partial sums: thread 0 accumulates straight into dw, others into part.
  std::vector<T> part(static_cast<size_t>(wsize * (nparts - 1)));
  std::fill(dw, dw + wsize, T(0));
  run_items(pl, s, nth, [&](const Item& it, int tid) {
    T* acc = tid == 0 ? dw : part.data() + (tid - 1) * wsize;
    const int64_t rows = it.p1 - it.p0, cols = it.nimg * rows * s.Q;
    const bool single = it.nimg == 1;
    T* col = nullptr;
    if (!(direct_1x1 && single)) col = scratch<T>(0, CRS * cols);
    T* dybuf = single ? nullptr : scratch<T>(1, Kg * cols);
    for (int64_t g = 0; g < G; ++g) {
      int64_t ldb;
      const T* B = col_operand(x, s, it, g * Cg, Cg, direct_1x1 && single, col, ldb);
      const T* A;
      int64_t lda;
      if (single) {
        A = dy + it.n0 * s.K * PQ + g * Kg * PQ + it.p0 * s.Q;
        lda = PQ;
      } else {
        for (int64_t j = 0; j < it.nimg; ++j)
          for (int64_t k = 0; k < Kg; ++k)
            std::memcpy(dybuf + k * cols + j * PQ, dy + (it.n0 + j) * s.K * PQ + (g * Kg + k) * PQ,
                        sizeof(T) * static_cast<size_t>(PQ));
        A = dybuf;
        lda = cols;
      }
      gemm(false, true, Kg, CRS, cols, T(1), A, lda, B, ldb, T(1), acc + g * Kg * CRS, CRS);
    }
  });
  reduce_partials(dw, part.data(), wsize, nparts, nth);
}

// ---------------------------------------------------------------------------
// Weight gradient with im2col fused into the B packing (Note [Conv fused weight gradient])
// ---------------------------------------------------------------------------

template <class T>
struct ColTPanelCtx {
  const T* xg;         // image n, first channel of the group
  const ColRow* rows;  // per CRS row
  int64_t col0;        // output pixel index of GEMM inner index 0
  int64_t H, W, Q, sh, sw;
  T* tmp;              // NR x packed_kc(K) scratch of the calling thread
};

// PackBPanel for dW = dy @ col^T: op(B) = col^T, so the panel (pixels [k0, k0+kc) x CRS rows
// [n0, n0+nr)) is built as nr im2col rows of kc pixels in ctx.tmp (contiguous runs of x, as in
// im2col) and transposed into the packed layout by the GEMM's own B packer.
template <class T>
DLCORE_CONV_NO_MEMCPY_IDIOM void pack_colT_panel(const void* vctx, int64_t k0, int64_t kc,
                                                 int64_t n0, int nr, int NR, T* dst) {
  (void)NR;
  const ColTPanelCtx<T>& cx = *static_cast<const ColTPanelCtx<T>*>(vctx);
  const int64_t H = cx.H, W = cx.W, Q = cx.Q, sw = cx.sw;
  T* tmp = cx.tmp;
  const int64_t ld = kc + 16;  // row pitch off a multiple of 4 KiB / 1 KiB (cache sets)
  // Pixels [k0, k0+kc) as runs within one output row, 64 runs at a time; per CRS row the runs
  // are copied with the row's constants hoisted (as in im2col).
  struct Seg {
    int64_t e0, len, ph, q;
  };
  Seg seg[64];
  for (int64_t c0 = 0; c0 < kc;) {
    int ns = 0;
    int64_t e0 = c0;
    for (; e0 < kc && ns < 64; ++ns) {
      const int64_t pix = cx.col0 + k0 + e0, p = pix / Q, q = pix % Q;
      const int64_t len = std::min(Q - q, kc - e0);
      seg[ns] = {e0, len, p * cx.sh, q};
      e0 += len;
    }
    for (int j = 0; j < nr; ++j) {
      const ColRow& cr = cx.rows[n0 + j];
      T* dj = tmp + j * ld;
      const T* xr = cx.xg + cr.xoff;
      const int64_t rowoff = cr.rowoff, qlo = cr.qlo, qhi = cr.qhi;
      for (int t = 0; t < ns; ++t) {
        const Seg& sg = seg[t];
        T* d = dj + sg.e0;
        const int64_t ih = sg.ph + rowoff, len = sg.len, q = sg.q;
        if (ih < 0 || ih >= H) {
          for (int64_t e = 0; e < len; ++e) d[e] = T(0);
          continue;
        }
        const int64_t qa = std::min(std::max(qlo, q), q + len);
        const int64_t qb = std::max(std::min(qhi, q + len), qa);
        const int64_t a = qa - q, b = qb - q;
        for (int64_t e = 0; e < a; ++e) d[e] = T(0);
        const T* src = xr + ih * W + qa * sw;
        if (sw == 1) {
          for (int64_t e = a; e < b; ++e) d[e] = src[e - a];
        } else {
          for (int64_t e = a; e < b; ++e) d[e] = src[(e - a) * sw];
        }
        for (int64_t e = b; e < len; ++e) d[e] = T(0);
      }
    }
    c0 = e0;
  }
  detail::pack_b_from_rows<T>(tmp, ld, kc, nr, dst);
}

// dW_g += dy_g(item) @ col(item)^T through gemm_packed_a: per work item (image, band of output
// rows) and group, dy is packed as A (Kg x pixels) and col^T panels are built from x on the fly.
// Per-thread partial sums reduced in thread order, as in backward_weight_impl.
template <class T>
void backward_weight_fused(const T* x, const T* dy, T* dw, const Conv2dShape& s) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q, HW = s.H * s.W;
  const int64_t wsize = s.K * CRS;
  const int nth = max_threads();
  const std::vector<ColRow> rows = col_rows(s, Cg);
  int64_t bands = 1;
  if (nth > 1 && s.N % nth != 0 && s.N < 4 * nth) bands = std::min<int64_t>(s.P, nth);
  // Bounded scratch: the packed dy of one item (Kg x rows*Q) stays within kColBudgetBytes.
  const int64_t budget_rows = std::max<int64_t>(
      1, kColBudgetBytes / static_cast<int64_t>(sizeof(T)) / std::max<int64_t>(1, Kg * s.Q));
  bands = std::max(bands, (s.P + budget_rows - 1) / budget_rows);
  Plan pl{};
  pl.nb = 1;
  pl.rows = (s.P + bands - 1) / bands;
  pl.bands = (s.P + pl.rows - 1) / pl.rows;
  pl.items = s.N * pl.bands;
  pl.parallel = nth > 1 && pl.items >= nth;
  const int nparts = pl.parallel ? nth : 1;
  std::vector<T> part(static_cast<size_t>(wsize * (nparts - 1)));
  std::fill(dw, dw + wsize, T(0));
  const detail::GemmTile tile = detail::gemm_tile<T>();
  run_items(pl, s, nth, [&](const Item& it, int tid) {
    T* acc = tid == 0 ? dw : part.data() + (tid - 1) * wsize;
    const int64_t col0 = it.p0 * s.Q, cols = (it.p1 - it.p0) * s.Q;
    T* ap = scratch<T>(1, detail::packed_a_size<T>(Kg, cols));
    T* tmp = scratch<T>(2, static_cast<int64_t>(tile.nr) * (detail::packed_kc<T>(cols) + 16));
    for (int64_t g = 0; g < G; ++g) {
      detail::pack_a_all<T>(false, Kg, cols, dy + it.n0 * s.K * PQ + g * Kg * PQ + col0, PQ, ap);
      const ColTPanelCtx<T> ctx{x + it.n0 * s.C * HW + g * Cg * HW, rows.data(), col0,
                                s.H, s.W, s.Q, s.stride_h, s.stride_w, tmp};
      detail::gemm_packed_a<T>(Kg, CRS, cols, ap, &pack_colT_panel<T>, &ctx, T(1),
                               acc + g * Kg * CRS, CRS);
    }
  });
  reduce_partials(dw, part.data(), wsize, nparts, nth);
}

// ---------------------------------------------------------------------------
// Input gradient with col2im fused per block of output rows (Note [Conv fused input gradient])
// ---------------------------------------------------------------------------

template <class T>
struct DyPanelCtx {
  const T* dyg;  // image n, first output channel of the group, first pixel of the block
  int64_t ld;    // P*Q
};

// PackBPanel for dcol = W^T @ dy: op(B) = dy block (Kg x pixels), row-major.
template <class T>
void pack_dy_panel(const void* vctx, int64_t k0, int64_t kc, int64_t n0, int nr, int NR, T* dst) {
  (void)NR;
  const DyPanelCtx<T>& cx = *static_cast<const DyPanelCtx<T>*>(vctx);
  detail::pack_b_rowmajor<T>(cx.dyg + k0 * cx.ld + n0, cx.ld, kc, nr, dst);
}

// Per image (one thread each), per block of output rows whose dcol (CRS x rows*Q) fits
// kDcolBlockBytes: dcol = W_g^T @ dy_block through gemm_packed_a (W^T packed once per call),
// then col2im_add of the block while it is still in cache.
constexpr int64_t kDcolBlockBytes = 64 * 1024;

template <class T>
void backward_input_fused(const T* dy, const T* w, T* dx, const Conv2dShape& s, int nth) {
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G;
  const int64_t CRS = Cg * s.R * s.S, PQ = s.P * s.Q, CHW = s.C * s.H * s.W;
  const int64_t asz = detail::packed_a_size<T>(CRS, Kg);
  std::vector<T> ap(static_cast<size_t>(asz * G));
  for (int64_t g = 0; g < G; ++g)
    detail::pack_a_all<T>(true, CRS, Kg, w + g * Kg * CRS, CRS, ap.data() + g * asz);
  const int64_t nr = detail::gemm_tile<T>().nr;
  int64_t rows = std::max<int64_t>(
      1, kDcolBlockBytes / static_cast<int64_t>(sizeof(T)) / std::max<int64_t>(1, CRS * s.Q));
  rows = std::max(rows, std::min(s.P, (nr + s.Q - 1) / s.Q));  // at least one full panel
  rows = std::min(rows, s.P);
  Plan pl{};
  pl.nb = 1;
  pl.rows = s.P;
  pl.bands = 1;
  pl.items = s.N;
  pl.parallel = nth > 1;
  run_items(pl, s, nth, [&](const Item& it, int) {
    T* dxn = dx + it.n0 * CHW;
    std::fill(dxn, dxn + CHW, T(0));
    T* buf = scratch<T>(0, CRS * rows * s.Q);
    for (int64_t p0 = 0; p0 < s.P; p0 += rows) {
      const int64_t p1 = std::min(s.P, p0 + rows), cols = (p1 - p0) * s.Q;
      for (int64_t g = 0; g < G; ++g) {
        const DyPanelCtx<T> ctx{dy + it.n0 * s.K * PQ + g * Kg * PQ + p0 * s.Q, PQ};
        detail::gemm_packed_a<T>(CRS, cols, Kg, ap.data() + g * asz, &pack_dy_panel<T>, &ctx,
                                 T(0), buf, cols);
        col2im_add(buf, cols, s, g * Cg, Cg, p0, p1, dxn);
      }
    }
  });
}

}  // namespace

template <class T>
void conv2d_forward(const T* x, const T* w, const T* bias, T* y, const Conv2dShape& s) {
  // Shapes: x (N,C,H,W), w (K,C/groups,R,S), bias (K) or null, y (N,K,P,Q).
  if (s.N <= 0 || s.K <= 0 || s.P <= 0 || s.Q <= 0) return;
  // Note [Conv fused im2col]: fused unless one image's im2col exceeds the col budget (then the
  // banded im2col + GEMM path measured 3-6% faster on (32,64,56,56)->64 3x3).
  const int64_t crs_pq = s.C / s.groups * s.R * s.S * s.P * s.Q;
  if (crs_pq * static_cast<int64_t>(sizeof(T)) > kColBudgetBytes) return forward_impl(x, w, bias, y, s);
  forward_fused(x, w, bias, y, s);
}

template <class T>
void conv2d_backward_input(const T* dy, const T* w, T* dx, const Conv2dShape& s) {
  // Shapes: dy (N,K,P,Q), w (K,C/groups,R,S), dx (N,C,H,W).
  if (s.N <= 0 || s.C <= 0 || s.H <= 0 || s.W <= 0) return;
  if (s.K <= 0 || s.P <= 0 || s.Q <= 0) {
    std::fill(dx, dx + s.N * s.C * s.H * s.W, T(0));
    return;
  }
  const int64_t G = s.groups, Cg = s.C / G, Kg = s.K / G, RS = s.R * s.S;
  const int64_t ph = s.dil_h * (s.R - 1) - s.pad_h, pw = s.dil_w * (s.S - 1) - s.pad_w;
  // Note [Conv algorithm] (backward input): GEMM + col2im unless its GEMM inner dimension Kg is
  // tiny while Cg is not; then (stride 1 only) the flipped-weight forward conv, whose GEMM has
  // M = Cg and inner dimension Kg*R*S. Both were measured on the five benchmark shapes at 2
  // threads (bwd_in GFLOP/s, col2im vs flipped): 52 vs 9, 85 vs 15, 108 vs 32, 209 vs 139,
  // 231 vs 241 -- the flipped conv loses badly when Cg (its GEMM M) is small.
  if (s.stride_h == 1 && s.stride_w == 1 && ph >= 0 && pw >= 0 && Kg < 8 && Cg >= 16) {
    // Stride-1 transposed conv == forward conv of dy with the flipped, channel-transposed
    // weight wt (C, Kg, R, S): wt[g*Cg+c][k][r][s] = w[g*Kg+k][c][R-1-r][S-1-s].
    std::vector<T> wt(static_cast<size_t>(s.C * Kg * RS));
    for (int64_t g = 0; g < G; ++g)
      for (int64_t k = 0; k < Kg; ++k)
        for (int64_t c = 0; c < Cg; ++c) {
          const T* src = w + ((g * Kg + k) * Cg + c) * RS;
          T* dst = wt.data() + ((g * Cg + c) * Kg + k) * RS;
          for (int64_t e = 0; e < RS; ++e) dst[e] = src[RS - 1 - e];
        }
    Conv2dShape t{};
    t.N = s.N;
    t.C = s.K;
    t.H = s.P;
    t.W = s.Q;
    t.K = s.C;
    t.R = s.R;
    t.S = s.S;
    t.stride_h = t.stride_w = 1;
    t.pad_h = ph;
    t.pad_w = pw;
    t.dil_h = s.dil_h;
    t.dil_w = s.dil_w;
    t.groups = G;
    t.P = s.H;
    t.Q = s.W;
    forward_impl(dy, wt.data(), static_cast<const T*>(nullptr), dx, t);
    return;
  }
  // Note [Conv fused input gradient]: one image per thread (used when the images split evenly
  // over the threads), for short columns (CRS < 128) only. Measured at 1 thread, bwd_in GFLOP/s
  // (col2im path -> fused): (64,1,28,28)->6 ~28 -> ~33, (128,3,32,32)->32 ~61 -> ~75,
  // (64,6,12,12)->16 and (128,32,16,16)->64 level, (32,64,56,56)->64 ~120-130 -> ~102-108
  // (CRS = 576: a 64 KiB dcol block is one 56-pixel output row, 32 + 24 ragged panels).
  const int nth = max_threads();
  if (Cg * RS < 128 && (nth == 1 || s.N % nth == 0 || s.N >= 4 * nth))
    return backward_input_fused(dy, w, dx, s, nth);
  backward_input_col2im(dy, w, dx, s);
}

template <class T>
void conv2d_backward_weight(const T* x, const T* dy, T* dw, const Conv2dShape& s) {
  // Shapes: x (N,C,H,W), dy (N,K,P,Q), dw (K,C/groups,R,S).
  const int64_t wsize = s.K * (s.C / s.groups) * s.R * s.S;
  if (s.N <= 0 || s.P <= 0 || s.Q <= 0) {
    std::fill(dw, dw + wsize, T(0));
    return;
  }
  // Note [Conv fused weight gradient]: fused when Kg >= 32 and C/groups*R*S < 128 (never for
  // 1x1 stride-1 unpadded convs, which use x as the GEMM operand directly). Measured, bwd_w
  // GFLOP/s (im2col path -> fused), 1 thread / 2 threads: (128,3,32,32)->32 ~56 -> ~62 /
  // ~107 -> ~119; (32,64,56,56)->64 level (~120 / ~230); (128,32,16,16)->64 level at 1 thread
  // but ~210 -> ~193 at 2; with few output channels ((64,1,28,28)->6, (64,6,12,12)->16) it lost
  // ~10%: per-image GEMMs with M = Kg = 6 / 16 and a short inner dimension (P*Q = 64) versus
  // the batched several-images-per-GEMM lowering.
  const bool direct_1x1 = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                          s.pad_h == 0 && s.pad_w == 0;
  const int64_t Kg = s.K / s.groups, CRS = s.C / s.groups * s.R * s.S;
  if (direct_1x1 || Kg < 32 || CRS >= 128) return backward_weight_impl(x, dy, dw, s);
  backward_weight_fused(x, dy, dw, s);
}

template void conv2d_forward<float>(const float*, const float*, const float*, float*,
                                    const Conv2dShape&);
template void conv2d_forward<double>(const double*, const double*, const double*, double*,
                                     const Conv2dShape&);
template void conv2d_backward_input<float>(const float*, const float*, float*, const Conv2dShape&);
template void conv2d_backward_input<double>(const double*, const double*, double*,
                                            const Conv2dShape&);
template void conv2d_backward_weight<float>(const float*, const float*, float*,
                                            const Conv2dShape&);
template void conv2d_backward_weight<double>(const double*, const double*, double*,
                                             const Conv2dShape&);

}  // namespace dlcore::kernels
