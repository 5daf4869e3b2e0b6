#pragma once
// Elementwise kernels over raw strided buffers. Shapes are already broadcast and
// coalesced; strides are in elements, one vector per operand (out last).
#include "dlcore/kernels/loops.h"

namespace dlcore::kernels {

// out[i] = op(a[i], b[i]) over `shape`. Contiguous and scalar-broadcast runs take
// unit-stride loops that the compiler vectorises.
template <class T, class R, class Op>
void binary_loop(const T* a, const T* b, R* out, const std::vector<int64_t>& shape,
                 const int64_t* sa, const int64_t* sb, const int64_t* so, Op op, bool parallel) {
  auto inner = [=](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
    const T* pa = a + off[0];
    const T* pb = b + off[1];
    R* po = out + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], pb[i]);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const T bv = *pb;
      for (int64_t i = 0; i < n; ++i) po[i] = op(pa[i], bv);
    } else if (st[0] == 0 && st[1] == 1 && st[2] == 1) {
      const T av = *pa;
      for (int64_t i = 0; i < n; ++i) po[i] = op(av, pb[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[2]] = op(pa[i * st[0]], pb[i * st[1]]);
    }
  };
  strided_apply<3>(shape, {sa, sb, so}, inner, parallel);
}

// Flat fast path: contiguous operands of n elements; an operand with
// a_scalar/b_scalar set is a single value broadcast over all n.
template <class T, class R, class Op>
void binary_flat(const T* a, const T* b, R* out, int64_t n, bool a_scalar, bool b_scalar, Op op, bool parallel) {
  auto run = [=](int64_t lo, int64_t hi) {
    if (!a_scalar && !b_scalar) {
      for (int64_t i = lo; i < hi; ++i) out[i] = op(a[i], b[i]);
    } else if (b_scalar && !a_scalar) {
      const T bv = *b;
      for (int64_t i = lo; i < hi; ++i) out[i] = op(a[i], bv);
    } else if (a_scalar && !b_scalar) {
      const T av = *a;
      for (int64_t i = lo; i < hi; ++i) out[i] = op(av, b[i]);
    } else {
      for (int64_t i = lo; i < hi; ++i) out[i] = op(*a, *b);
    }
  };
  for_chunks(n, parallel, run);
}

// out[i] = op(x[i]).
template <class T, class R, class Op>
void unary_loop(const T* x, R* out, const std::vector<int64_t>& shape, const int64_t* sx,
                const int64_t* so, Op op, bool parallel) {
  auto inner = [=](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
    const T* px = x + off[0];
    R* po = out + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = op(px[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i * st[1]] = op(px[i * st[0]]);
    }
  };
  strided_apply<2>(shape, {sx, so}, inner, parallel);
}

// out[i] = cond[i] ? a[i] : b[i].
template <class T>
void where_loop(const bool* c, const T* a, const T* b, T* out, const std::vector<int64_t>& shape,
                const int64_t* sc, const int64_t* sa, const int64_t* sb, const int64_t* so, bool parallel) {
  auto inner = [=](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
    for (int64_t i = 0; i < n; ++i)
      out[off[3] + i * st[3]] = c[off[0] + i * st[0]] ? a[off[1] + i * st[1]] : b[off[2] + i * st[2]];
  };
  strided_apply<4>(shape, {sc, sa, sb, so}, inner, parallel);
}

// dst[i] = static_cast<D>(src[i]): copies, dtype conversions, broadcasting assignment.
template <class S, class D>
void copy_loop(const S* src, D* dst, const std::vector<int64_t>& shape, const int64_t* ss,
               const int64_t* sd, bool parallel) {
  unary_loop<S, D>(src, dst, shape, ss, sd, [](S v) { return static_cast<D>(v); }, parallel);
}

}  // namespace dlcore::kernels
