// The dlcore.Tensor class: properties, operators, methods and indexing.
#include <optional>

#include "common.h"
#include "dlcore/autograd.h"

namespace dlcore::py_bind {

namespace {

py::tuple to_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

// Tensor (op) other, other being a Tensor, a Python scalar or something numpy can
// read; NotImplemented for anything else so Python raises its usual TypeError.
py::object binary_any(BinaryOp op, const Tensor& a, py::handle other, bool reflected) {
  Tensor b;
  ScalarKind kind;
  if (py::isinstance<Tensor>(other)) {
    b = other.cast<Tensor>();
  } else if (scalar_kind(other, kind)) {
    b = scalar_like(other, kind, a);
  } else {
    try {
      b = as_tensor(other);
    } catch (py::error_already_set&) {
      return not_implemented();
    } catch (const TypeError&) {
      return not_implemented();
    }
  }
  const int64_t work = std::max(a.numel(), b.numel());
  Tensor r = maybe_nogil(work, [&] { return reflected ? binary(op, b, a) : binary(op, a, b); });
  return py::cast(std::move(r));
}

py::object inplace_any(BinaryOp op, py::object self, py::handle other) {
  const Tensor& a = self.cast<const Tensor&>();
  Tensor b;
  ScalarKind kind;
  if (py::isinstance<Tensor>(other)) b = other.cast<Tensor>();
  else if (scalar_kind(other, kind)) b = scalar_like(other, kind, a);
  else b = as_tensor(other);
  maybe_nogil(a.numel(), [&] { binary_(op, a, b); });
  return self;  // the same Python object, as `t += 1` must keep identity
}

std::vector<int64_t> dims_arg(py::handle dim) {
  std::vector<int64_t> ds;
  if (dim.is_none()) return ds;
  if (PyLong_Check(dim.ptr())) {
    ds.push_back(dim.cast<int64_t>());
    return ds;
  }
  for (py::handle h : dim) ds.push_back(h.cast<int64_t>());
  DLCORE_CHECK(!ds.empty(), ValueError, "expected at least one dim, got an empty sequence");
  return ds;
}

// ---- indexing ----
// Note [Indexing]
//   Basic indexing (ints, slices with positive steps, None, ...) gives a view.
//   One integer-array index (a list, an int64 tensor or numpy array) gathers
//   along its dim with index_select; its shape replaces that dim (numpy's rule
//   for a single advanced index). A boolean mask covering k dims is the same
//   thing on those dims merged into one, with the indices of its True entries.
struct IndexResult {
  Tensor view;
  int64_t adv_dim = -1;  // dim of the advanced index in `view`, or -1
  Tensor adv_index;
  Tensor mask;             // the boolean mask, when the advanced index came from one
  int64_t mask_dim = -1;   // its first dim in the (unmerged) tensor
};

// Flat positions of the True entries of a bool tensor, as int64 (C order).
Tensor true_positions(const Tensor& mask) {
  if (mask.device().type != DeviceType::CPU)  // positions are found on the host, then moved back
    return to_device(true_positions(on_host(mask)), mask.device());
  const Tensor m = contiguous(mask);
  const bool* p = m.data<bool>();
  int64_t count = 0;
  for (int64_t i = 0, n = m.numel(); i < n; ++i) count += p[i];
  Tensor idx = Tensor::empty({count}, DType::Int64);
  int64_t* q = idx.data<int64_t>();
  for (int64_t i = 0, n = m.numel(), j = 0; i < n; ++i)
    if (p[i]) q[j++] = i;
  return idx;
}

// Dims an index item consumes: a boolean mask consumes its rank.
int64_t dims_consumed(py::handle h) {
  if (py::isinstance<Tensor>(h)) {
    const Tensor& t = h.cast<const Tensor&>();
    return t.dtype() == DType::Bool ? std::max<int64_t>(t.dim(), 1) : 1;
  }
  if (py::isinstance<py::array>(h)) {
    const py::array a = py::reinterpret_borrow<py::array>(h);
    return a.dtype().kind() == 'b' ? std::max<int64_t>(a.ndim(), 1) : 1;
  }
  return 1;
}

IndexResult apply_index(const Tensor& x, py::handle key) {
  std::vector<py::handle> items;
  py::tuple tup;
  if (py::isinstance<py::tuple>(key)) {
    tup = py::reinterpret_borrow<py::tuple>(key);
    for (py::handle h : tup) items.push_back(h);
  } else {
    items.push_back(key);
  }
  // count the dims consumed, expand the ellipsis
  int64_t consumed = 0, ellipses = 0;
  for (py::handle h : items) {
    if (h.is_none()) continue;
    if (h.ptr() == Py_Ellipsis) ++ellipses;
    else consumed += dims_consumed(h);
  }
  DLCORE_CHECK(ellipses <= 1, IndexError, "an index can only have a single ellipsis ('...')");
  DLCORE_CHECK(consumed <= x.dim(), IndexError, "too many indices for a tensor of dimension ", x.dim(),
               " (shape ", shape_str(x.shape()), "): got ", consumed);
  IndexResult r;
  Tensor v = x;
  int64_t d = 0;
  for (py::handle h : items) {
    if (h.is_none()) {
      v = unsqueeze(v, d);
      ++d;
    } else if (h.ptr() == Py_Ellipsis) {
      d += x.dim() - consumed;
    } else if (PyBool_Check(h.ptr())) {
      throw IndexError("a Python bool is not an index (use an int, or a boolean tensor as a mask)");
    } else if (PyLong_Check(h.ptr()) && !PyBool_Check(h.ptr())) {
      const int64_t n = v.shape()[d];
      const int64_t i = h.cast<int64_t>();
      DLCORE_CHECK(i >= -n && i < n, IndexError, "index ", i, " is out of bounds for dim ", d, " with size ", n);
      v = select(v, d, i);
    } else if (PySlice_Check(h.ptr())) {
      Py_ssize_t start, stop, step;
      if (PySlice_Unpack(h.ptr(), &start, &stop, &step) < 0) throw py::error_already_set();
      v = slice(v, d, start, stop, step);  // negative steps give a negative-stride view
      ++d;
    } else {
      DLCORE_CHECK(r.adv_dim < 0, IndexError,
                   "only one integer-array index is supported per indexing expression");
      Tensor idx;
      if (py::isinstance<Tensor>(h)) idx = h.cast<Tensor>();
      else if (PyIndex_Check(h.ptr()) && !py::isinstance<py::array>(h)) {
        // numpy integer scalars and other __index__ objects act as ints
        const int64_t n = v.shape()[d];
        const int64_t i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr())).cast<int64_t>();
        DLCORE_CHECK(i >= -n && i < n, IndexError, "index ", i, " is out of bounds for dim ", d, " with size ", n);
        v = select(v, d, i);
        continue;
      } else {
        try {
          idx = as_tensor(h);
        } catch (py::error_already_set&) {
          throw IndexError(str("unsupported index ", std::string(py::repr(h)),
                               ": use ints, slices, None, ..., or an integer array"));
        }
      }
      if (idx.dtype() == DType::Bool) {  // boolean mask over dims d .. d+k-1
        const Tensor mask = idx.dim() == 0 ? reshape(idx, {1}) : idx;
        const int64_t k = mask.dim();
        const Shape covered(v.shape().begin() + d, v.shape().begin() + std::min<int64_t>(d + k, v.dim()));
        DLCORE_CHECK(covered == mask.shape(), IndexError, "boolean mask of shape ", shape_str(mask.shape()),
                     " does not match the indexed dims ", shape_str(covered), " of the tensor of shape ",
                     shape_str(v.shape()));
        Shape merged(v.shape().begin(), v.shape().begin() + d);
        merged.push_back(mask.numel());
        merged.insert(merged.end(), v.shape().begin() + d + k, v.shape().end());
        v = reshape(v, merged);
        r.mask = mask;
        r.mask_dim = d;
        idx = true_positions(mask);
      }
      if (idx.numel() == 0 && idx.dtype() != DType::Int64) idx = to_dtype(idx, DType::Int64);  // x[[]]
      DLCORE_CHECK(idx.dtype() == DType::Int64, IndexError, "index arrays must be integers or booleans, got dtype ",
                   dtype_name(idx.dtype()));
      r.adv_dim = d;
      r.adv_index = idx;
      ++d;
    }
  }
  r.view = v;
  return r;
}

Tensor getitem(const Tensor& x, py::handle key) {
  IndexResult r = apply_index(x, key);
  if (r.adv_dim < 0) return r.view;
  // A host index serves a tensor on any device (as in PyTorch's indexing); it moves to
  // the tensor with its range noted, so the bounds check needs no copy back.
  const Tensor flat = to_device(reshape(r.adv_index, {r.adv_index.numel()}), x.device());
  Tensor g = maybe_nogil(r.view.numel(), [&] { return index_select(r.view, r.adv_dim, flat); });
  Shape sh(g.shape().begin(), g.shape().begin() + r.adv_dim);
  sh.insert(sh.end(), r.adv_index.shape().begin(), r.adv_index.shape().end());
  sh.insert(sh.end(), g.shape().begin() + r.adv_dim + 1, g.shape().end());
  return reshape(g, sh);
}

void setitem(const Tensor& x, py::handle key, py::handle value) {
  IndexResult r = apply_index(x, key);
  ScalarKind kind;
  Tensor val;
  if (py::isinstance<Tensor>(value)) val = value.cast<Tensor>();
  else if (scalar_kind(value, kind)) val = scalar_like(value, kind, x);
  else val = as_tensor(value);
  if (r.adv_dim < 0) {
    maybe_nogil(r.view.numel(), [&] { copy_(r.view, val); });
    return;
  }
  if (r.mask.defined() && val.numel() == 1) {
    // x[mask] = value: one vectorised where over x, the mask broadcast in place.
    Shape ms(r.mask_dim, 1);
    ms.insert(ms.end(), r.mask.shape().begin(), r.mask.shape().end());
    ms.resize(x.dim(), 1);
    const Tensor m = reshape(to_device(r.mask, x.device()), ms);
    maybe_nogil(x.numel(), [&] { copy_(x, where(m, reshape(val, {}), x)); });
    return;
  }
  DLCORE_CHECK(r.view.storage() == x.storage(), ValueError,
               "assigning an array through a boolean mask needs a tensor whose masked dims can be merged without a "
               "copy (e.g. a contiguous tensor); use dlcore.where");
  // x[..., idx, ...] = val: write each gathered slice back.
  // the positions are read on the host, whatever device the index tensor is on
  const Tensor flat = contiguous(on_host(reshape(r.adv_index, {r.adv_index.numel()})));
  Shape gsh = r.view.shape();
  gsh[r.adv_dim] = flat.numel();
  Shape full_sh(gsh.begin(), gsh.begin() + r.adv_dim);
  full_sh.insert(full_sh.end(), r.adv_index.shape().begin(), r.adv_index.shape().end());
  full_sh.insert(full_sh.end(), gsh.begin() + r.adv_dim + 1, gsh.end());
  Tensor vb;
  try {
    vb = reshape(contiguous(expand(val, full_sh)), gsh);
  } catch (const ValueError&) {
    throw ValueError(str("cannot assign a value of shape ", shape_str(val.shape()), " to an indexed result of shape ",
                         shape_str(full_sh)));
  }
  if (vb.storage() == x.storage()) vb = clone(vb);  // the source overlaps what we write
  const int64_t n = r.view.shape()[r.adv_dim];
  const int64_t* ip = flat.data<int64_t>();
  for (int64_t i = 0; i < flat.numel(); ++i)
    DLCORE_CHECK(ip[i] >= -n && ip[i] < n, IndexError, "index ", ip[i], " is out of bounds for dim ", r.adv_dim,
                 " with size ", n);
  for (int64_t i = 0; i < flat.numel(); ++i) copy_(select(r.view, r.adv_dim, ip[i]), select(vb, r.adv_dim, i));
}

}  // namespace

void bind_tensor(py::module_& m) {
  py::class_<Tensor> cls(m, "Tensor", py::buffer_protocol());
  // Tensor(t): a new leaf sharing t's memory (used by nn.Parameter, a Python subclass).
  cls.def(py::init([](const Tensor& t) { return detach(t); }), py::arg("data"));
  cls.def_property_readonly("shape", [](const Tensor& t) { return to_tuple(t.shape()); })
      .def("size", [](const Tensor& t, py::object dim) -> py::object {
        if (dim.is_none()) return to_tuple(t.shape());
        return py::int_(t.size(dim.cast<int64_t>()));
      }, py::arg("dim") = py::none())
      .def("stride", [](const Tensor& t, py::object dim) -> py::object {
        if (dim.is_none()) return to_tuple(t.strides());
        DLCORE_CHECK(t.dim() > 0, IndexError, "stride(", dim.cast<int64_t>(), "): a 0-d tensor has no dims");
        return py::int_(t.strides()[normalize_dim(dim.cast<int64_t>(), t.dim())]);
      }, py::arg("dim") = py::none())
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", [](const Tensor& t) { return t.device(); })
      .def_property_readonly("is_cuda", [](const Tensor& t) { return t.device().type == DeviceType::CUDA; })
      .def_property_readonly("ndim", &Tensor::dim)
      .def("dim", &Tensor::dim)
      .def("numel", &Tensor::numel)
      .def("element_size", [](const Tensor& t) { return itemsize(t.dtype()); })
      .def_property_readonly("itemsize", [](const Tensor& t) { return itemsize(t.dtype()); })
      .def_property_readonly("nbytes", [](const Tensor& t) { return t.numel() * itemsize(t.dtype()); })
      .def("storage_offset", &Tensor::offset)
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()); })
      .def("is_contiguous", &Tensor::is_contiguous)
      .def("is_floating_point", [](const Tensor& t) { return is_floating(t.dtype()); })
      .def("__len__", [](const Tensor& t) {
        DLCORE_CHECK(t.dim() > 0, TypeError, "len() of a 0-d tensor");
        return t.shape()[0];
      })
      .def("__hash__", [](const Tensor& t) { return reinterpret_cast<intptr_t>(t.impl()); })
      .def("_version", [](const Tensor& t) { return t.storage()->version(); })
      .def("_same_storage", [](const Tensor& a, const Tensor& b) { return a.storage() == b.storage(); });

  // ---- arithmetic and comparison operators ----
  struct OpName { const char* fwd; const char* rev; BinaryOp op; };
  static const OpName ops[] = {
      {"__add__", "__radd__", BinaryOp::Add},     {"__sub__", "__rsub__", BinaryOp::Sub},
      {"__mul__", "__rmul__", BinaryOp::Mul},     {"__truediv__", "__rtruediv__", BinaryOp::Div},
      {"__pow__", "__rpow__", BinaryOp::Pow},
  };
  for (const OpName& o : ops) {
    const BinaryOp op = o.op;
    cls.def(o.fwd, [op](const Tensor& a, const Tensor& b) {
      return maybe_nogil(std::max(a.numel(), b.numel()), [&] { return binary(op, a, b); });
    });
    cls.def(o.fwd, [op](const Tensor& a, py::handle b) { return binary_any(op, a, b, false); });
    cls.def(o.rev, [op](const Tensor& a, py::handle b) { return binary_any(op, a, b, true); });
  }
  static const std::pair<const char*, BinaryOp> cmps[] = {
      {"__eq__", BinaryOp::Eq}, {"__ne__", BinaryOp::Ne}, {"__lt__", BinaryOp::Lt},
      {"__le__", BinaryOp::Le}, {"__gt__", BinaryOp::Gt}, {"__ge__", BinaryOp::Ge}};
  for (const auto& c : cmps) {
    const BinaryOp op = c.second;
    cls.def(c.first, [op](const Tensor& a, py::handle b) { return binary_any(op, a, b, false); });
  }
  static const std::pair<const char*, BinaryOp> inplace[] = {
      {"__iadd__", BinaryOp::Add}, {"__isub__", BinaryOp::Sub}, {"__imul__", BinaryOp::Mul},
      {"__itruediv__", BinaryOp::Div}, {"__ipow__", BinaryOp::Pow},
      {"add_", BinaryOp::Add}, {"sub_", BinaryOp::Sub}, {"mul_", BinaryOp::Mul},
      {"div_", BinaryOp::Div}, {"pow_", BinaryOp::Pow}};
  for (const auto& c : inplace) {
    const BinaryOp op = c.second;
    cls.def(c.first, [op](py::object a, py::handle b) { return inplace_any(op, std::move(a), b); }, py::arg("other"));
  }
  static const std::pair<const char*, BinaryOp> named[] = {
      {"add", BinaryOp::Add}, {"sub", BinaryOp::Sub}, {"mul", BinaryOp::Mul}, {"div", BinaryOp::Div},
      {"pow", BinaryOp::Pow}, {"maximum", BinaryOp::Maximum}, {"minimum", BinaryOp::Minimum},
      {"eq", BinaryOp::Eq}, {"ne", BinaryOp::Ne}, {"lt", BinaryOp::Lt}, {"le", BinaryOp::Le},
      {"gt", BinaryOp::Gt}, {"ge", BinaryOp::Ge}};
  for (const auto& c : named) {
    const BinaryOp op = c.second;
    cls.def(c.first, [op](const Tensor& a, py::handle b) {
      py::object r = binary_any(op, a, b, false);
      if (r.ptr() == Py_NotImplemented)
        throw TypeError(str(binary_op_name(op), ": unsupported operand ", std::string(py::repr(b))));
      return r;
    }, py::arg("other"));
    m.def(c.first, [op](py::handle a, py::handle b) {
      const Tensor ta = as_tensor(a), tb = as_tensor(b);
      return maybe_nogil(std::max(ta.numel(), tb.numel()), [&] { return binary(op, ta, tb); });
    }, py::arg("input"), py::arg("other"));
  }
  cls.def("__matmul__", [](const Tensor& a, py::handle b) {
    const Tensor tb = as_tensor(b);
    return maybe_nogil(a.numel() + tb.numel(), [&] { return matmul(a, tb); });
  });
  cls.def("__rmatmul__", [](const Tensor& a, py::handle b) {
    const Tensor tb = as_tensor(b);
    return maybe_nogil(a.numel() + tb.numel(), [&] { return matmul(tb, a); });
  });
  cls.def("matmul", [](const Tensor& a, const Tensor& b) {
    return maybe_nogil(a.numel() + b.numel(), [&] { return matmul(a, b); });
  }, py::arg("other"));
  m.def("matmul", [](const Tensor& a, const Tensor& b) {
    return maybe_nogil(a.numel() + b.numel(), [&] { return matmul(a, b); });
  }, py::arg("input"), py::arg("other"));

  // ---- unary ----
  static const std::pair<const char*, UnaryOp> unaries[] = {
      {"neg", UnaryOp::Neg}, {"abs", UnaryOp::Abs}, {"exp", UnaryOp::Exp}, {"log", UnaryOp::Log},
      {"sqrt", UnaryOp::Sqrt}, {"sin", UnaryOp::Sin}, {"cos", UnaryOp::Cos}, {"tanh", UnaryOp::Tanh},
      {"sigmoid", UnaryOp::Sigmoid}, {"relu", UnaryOp::Relu}};
  for (const auto& u : unaries) {
    const UnaryOp op = u.second;
    auto f = [op](const Tensor& x) { return maybe_nogil(x.numel(), [&] { return unary(op, x); }); };
    cls.def(u.first, f);
    m.def(u.first, f, py::arg("input"));
  }
  cls.def("__neg__", [](const Tensor& x) { return unary(UnaryOp::Neg, x); });
  cls.def("__abs__", [](const Tensor& x) { return unary(UnaryOp::Abs, x); });

  // ---- reductions ----
  auto def_reduction = [&](const char* name, Tensor (*fn)(const Tensor&, const std::vector<int64_t>&, bool)) {
    auto f = [fn](const Tensor& x, py::handle dim, bool keepdim) {
      const auto ds = dims_arg(dim);
      return maybe_nogil(x.numel(), [&] { return fn(x, ds, keepdim); });
    };
    cls.def(name, f, py::arg("dim") = py::none(), py::arg("keepdim") = false);
    m.def(name, f, py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  };
  def_reduction("sum", &sum);
  def_reduction("mean", &mean);
  def_reduction("amax", &amax);
  def_reduction("amin", &amin);
  auto var_f = [](const Tensor& x, py::handle dim, py::handle unbiased, py::handle correction, bool keepdim) {
    double corr = 1.0;
    if (!correction.is_none()) corr = correction.cast<double>();
    else if (!unbiased.is_none()) corr = unbiased.cast<bool>() ? 1.0 : 0.0;
    const auto ds = dims_arg(dim);
    return maybe_nogil(x.numel(), [&] { return var(x, ds, corr, keepdim); });
  };
  cls.def("var", var_f, py::arg("dim") = py::none(), py::arg("unbiased") = py::none(), py::kw_only(),
          py::arg("correction") = py::none(), py::arg("keepdim") = false);
  m.def("var", var_f, py::arg("input"), py::arg("dim") = py::none(), py::arg("unbiased") = py::none(),
        py::kw_only(), py::arg("correction") = py::none(), py::arg("keepdim") = false);
  auto arg_f = [](bool is_max) {
    return [is_max](const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
      return maybe_nogil(x.numel(), [&] { return is_max ? argmax(x, dim, keepdim) : argmin(x, dim, keepdim); });
    };
  };
  cls.def("argmax", arg_f(true), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  cls.def("argmin", arg_f(false), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("argmax", arg_f(true), py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("argmin", arg_f(false), py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("_max_dim", [](const Tensor& x, int64_t dim, bool keepdim) {
    return maybe_nogil(x.numel(), [&] { return max_dim(x, dim, keepdim); });
  });
  m.def("_min_dim", [](const Tensor& x, int64_t dim, bool keepdim) {
    return maybe_nogil(x.numel(), [&] { return min_dim(x, dim, keepdim); });
  });

  // ---- shape ops and copies ----
  cls.def("reshape", [](const Tensor& x, py::args shape) { return reshape(x, shape_from_args(shape)); })
      .def("view", [](const Tensor& x, py::args shape) { return view(x, shape_from_args(shape)); })
      .def("flatten", &flatten, py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("transpose", &transpose, py::arg("dim0"), py::arg("dim1"))
      .def("permute", [](const Tensor& x, py::args dims) { return permute(x, shape_from_args(dims)); })
      .def_property_readonly("T", &t)
      .def("t", [](const Tensor& x) {
        DLCORE_CHECK(x.dim() <= 2, ValueError, "t() expects a tensor with <= 2 dims, got shape ",
                     shape_str(x.shape()), "; use transpose() or .T");
        return t(x);
      })
      .def("squeeze", [](const Tensor& x, py::handle dim) {
        if (dim.is_none()) return squeeze(x);
        return squeeze(x, dims_arg(dim));
      }, py::arg("dim") = py::none())
      .def("unsqueeze", &unsqueeze, py::arg("dim"))
      .def("expand", [](const Tensor& x, py::args shape) { return expand(x, shape_from_args(shape)); })
      .def("broadcast_to", [](const Tensor& x, py::handle shape) { return expand(x, shape_from_obj(shape)); },
           py::arg("shape"))
      .def("contiguous", [](const Tensor& x) { return maybe_nogil(x.numel(), [&] { return contiguous(x); }); })
      .def("clone", [](const Tensor& x) { return maybe_nogil(x.numel(), [&] { return clone(x); }); })
      .def("_to_dtype", [](const Tensor& x, py::handle dt) {
        const DType d = parse_dtype(dt);
        return maybe_nogil(x.numel(), [&] { return to_dtype(x, d); });
      })
      .def("float", [](const Tensor& x) { return to_dtype(x, DType::Float32); })
      .def("double", [](const Tensor& x) { return to_dtype(x, DType::Float64); })
      .def("long", [](const Tensor& x) { return to_dtype(x, DType::Int64); })
      .def("bool", [](const Tensor& x) { return to_dtype(x, DType::Bool); })
      .def("index_select", &index_select, py::arg("dim"), py::arg("index"))
      .def("copy_", [](py::object self, py::handle src) {
        const Tensor& x = self.cast<const Tensor&>();
        const Tensor s = as_tensor(src);
        maybe_nogil(x.numel(), [&] { copy_(x, s); });
        return self;
      }, py::arg("src"))
      .def("fill_", [](py::object self, py::handle v) {
        const Tensor& x = self.cast<const Tensor&>();
        ScalarKind kind;
        DLCORE_CHECK(scalar_kind(v, kind) || py::isinstance<Tensor>(v), TypeError,
                     "fill_ expects a number, got ", std::string(py::repr(v)));
        const Tensor value = py::isinstance<Tensor>(v) ? v.cast<Tensor>() : scalar_like(v, kind, x);
        DLCORE_CHECK(value.numel() == 1, ValueError, "fill_ expects a single value, got shape ",
                     shape_str(value.shape()));
        maybe_nogil(x.numel(), [&] { copy_(x, value); });  // exact for int64, with autograd rules of copy_
        return self;
      }, py::arg("value"))
      .def("zero_", [](py::object self) {
        const Tensor& x = self.cast<const Tensor&>();
        maybe_nogil(x.numel(), [&] { fill_(x, 0.0); });
        return self;
      })
      .def("__getitem__", &getitem)
      .def("__setitem__", &setitem);
  m.def("reshape", [](const Tensor& x, py::handle s) { return reshape(x, shape_from_obj(s)); }, py::arg("input"),
        py::arg("shape"));
  m.def("flatten", &flatten, py::arg("input"), py::arg("start_dim") = 0, py::arg("end_dim") = -1);
  m.def("transpose", &transpose, py::arg("input"), py::arg("dim0"), py::arg("dim1"));
  m.def("permute", [](const Tensor& x, py::handle d) { return permute(x, shape_from_obj(d)); }, py::arg("input"),
        py::arg("dims"));
  m.def("squeeze", [](const Tensor& x, py::handle dim) {
    if (dim.is_none()) return squeeze(x);
    return squeeze(x, dims_arg(dim));
  }, py::arg("input"), py::arg("dim") = py::none());
  m.def("unsqueeze", &unsqueeze, py::arg("input"), py::arg("dim"));
  m.def("index_select", &index_select, py::arg("input"), py::arg("dim"), py::arg("index"));
  m.def("broadcast_to", [](const Tensor& x, py::handle s) { return expand(x, shape_from_obj(s)); }, py::arg("input"),
        py::arg("shape"));
  m.def("broadcast_shapes", [](py::args shapes) {
    Shape out;
    for (py::handle s : shapes) out = broadcast_shapes(out, shape_from_obj(s));
    return to_tuple(out);
  });
  m.def("contiguous", &contiguous, py::arg("input"));
  m.def("clone", &clone, py::arg("input"));

  bind_interop(m, cls);
  bind_autograd(m, cls);
}

}  // namespace dlcore::py_bind
