#include "dlcore/shape.h"

#include "dlcore/errors.h"

namespace dlcore {

int64_t numel_checked(const Shape& shape) {
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : shape) {
    DLCORE_CHECK(d >= 0, ValueError, "negative dimension ", d, " in shape ", shape_str(shape));
    if (!overflow && __builtin_mul_overflow(n, d, &n)) overflow = true;
  }
  // A zero dim makes the product 0 whatever overflowed before it.
  for (int64_t d : shape)
    if (d == 0) return 0;
  DLCORE_CHECK(!overflow, ValueError, "shape ", shape_str(shape), " has more elements than int64 can count");
  return n;
}

int64_t dims_product(const Shape& shape, int64_t begin, int64_t end) {
  int64_t p = 1;
  for (int64_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    st[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
  return st;
}

bool is_contiguous(const Shape& shape, const Shape& strides) {
  int64_t expected = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    if (shape[i] == 0) return true;
    if (shape[i] == 1) continue;
    if (strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DLCORE_CHECK(da == db || da == 1 || db == 1, ValueError, "shapes ", shape_str(a), " and ", shape_str(b),
                 " cannot be broadcast together (dim ", static_cast<int64_t>(i) - static_cast<int64_t>(n),
                 ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& target) {
  DLCORE_CHECK(shape.size() <= target.size(), ValueError, "cannot broadcast shape ", shape_str(shape), " to ",
               shape_str(target));
  Shape out(target.size(), 0);
  const size_t lead = target.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t d = shape[i], t = target[lead + i];
    DLCORE_CHECK(d == t || d == 1, ValueError, "cannot broadcast shape ", shape_str(shape), " to ",
                 shape_str(target));
    out[lead + i] = (d == t && d != 1) ? strides[i] : 0;
  }
  return out;
}

int64_t normalize_dim(int64_t dim, int64_t ndim) {
  const int64_t n = ndim == 0 ? 1 : ndim;
  DLCORE_CHECK(dim >= -n && dim < n, IndexError, "dim ", dim, " is out of range for a tensor with ", ndim,
               " dims (expected in [", -n, ", ", n - 1, "])");
  return dim < 0 ? dim + n : dim;
}

Shape infer_shape(const Shape& requested, int64_t numel) {
  Shape out = requested;
  int64_t infer_at = -1, known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      DLCORE_CHECK(infer_at < 0, ValueError, "only one dimension can be -1 in shape ", shape_str(requested));
      infer_at = static_cast<int64_t>(i);
    } else {
      DLCORE_CHECK(out[i] >= 0, ValueError, "invalid dimension ", out[i], " in shape ", shape_str(requested));
      if (__builtin_mul_overflow(known, out[i], &known))
        throw ValueError(str("shape ", shape_str(requested), " has more elements than int64 can count"));
    }
  }
  if (infer_at >= 0) {
    DLCORE_CHECK(known != 0 && numel % known == 0, ValueError, "cannot reshape a tensor of ", numel,
                 " elements into shape ", shape_str(requested));
    out[infer_at] = numel / known;
  } else {
    DLCORE_CHECK(known == numel, ValueError, "cannot reshape a tensor of ", numel, " elements into shape ",
                 shape_str(requested));
  }
  return out;
}

bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 1);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (numel == 0) {
    out = contiguous_strides(new_shape);
    return true;
  }
  // Old dims of size 1 carry no layout information.
  Shape os, ost;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) {
      os.push_back(shape[i]);
      ost.push_back(strides[i]);
    }
  const size_t no = os.size(), nn = new_shape.size();
  size_t oi = 0, ni = 0;
  while (ni < nn) {
    if (new_shape[ni] == 1) {
      ++ni;
      continue;
    }
    if (oi >= no) return false;
    // Grow an old chunk (that must be internally contiguous) and a new chunk until
    // their element counts agree; the new dims then get strides within the chunk.
    int64_t po = os[oi], pn = new_shape[ni];
    const size_t nstart = ni;
    while (po != pn) {
      if (po < pn) {
        ++oi;
        if (oi >= no || ost[oi - 1] != ost[oi] * os[oi]) return false;
        po *= os[oi];
      } else {
        ++ni;
        if (ni >= nn) return false;
        pn *= new_shape[ni];
      }
    }
    int64_t s = ost[oi];
    for (size_t k = ni + 1; k-- > nstart;) {
      out[k] = s;
      s *= new_shape[k];
    }
    ++oi;
    ++ni;
  }
  return oi == no;
}

void coalesce_dims(Shape& shape, std::vector<Shape*> strides) {
  Shape ns;
  std::vector<Shape> nst(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !ns.empty();
    if (merge)
      for (size_t k = 0; k < strides.size(); ++k)
        if (nst[k].back() != (*strides[k])[d] * shape[d]) {
          merge = false;
          break;
        }
    if (merge) {
      ns.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) nst[k].back() = (*strides[k])[d];
    } else {
      ns.push_back(shape[d]);
      for (size_t k = 0; k < strides.size(); ++k) nst[k].push_back((*strides[k])[d]);
    }
  }
  shape = ns;
  for (size_t k = 0; k < strides.size(); ++k) *strides[k] = nst[k];
}

}  // namespace dlcore
