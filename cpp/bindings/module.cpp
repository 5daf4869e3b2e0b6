// dlcore._core: the Python extension. Errors, dtypes, helpers and module-level functions.
#include "common.h"
#include "dlcore/backend.h"

#include "dlcore/kernels/gemm.h"

namespace dlcore::py_bind {

DType parse_dtype(py::handle obj) {
  if (py::isinstance<DType>(obj)) return obj.cast<DType>();
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyFloat_Type)) return DType::Float64;
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyBool_Type)) return DType::Bool;
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyLong_Type)) return DType::Int64;
  std::string name;
  if (py::isinstance<py::str>(obj)) {
    name = obj.cast<std::string>();
  } else {
    try {
      name = py::str(py::dtype::from_args(py::reinterpret_borrow<py::object>(obj)).attr("name"));
    } catch (py::error_already_set&) {
      throw TypeError(str("expected a dtype, got ", std::string(py::repr(obj))));
    }
  }
  if (name == "float32" || name == "float") return DType::Float32;
  if (name == "float64" || name == "double") return DType::Float64;
  if (name == "int64" || name == "long") return DType::Int64;
  if (name == "bool") return DType::Bool;
  throw TypeError(str("unsupported dtype '", name, "': dlcore supports float32, float64, int64 and bool"));
}

DType parse_dtype_or(py::handle obj, DType dflt) { return obj.is_none() ? dflt : parse_dtype(obj); }

Shape shape_from_obj(py::handle obj) {
  Shape s;
  if (PyLong_Check(obj.ptr())) {
    s.push_back(obj.cast<int64_t>());
    return s;
  }
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw TypeError(str("expected a shape (a sequence of ints), got ", std::string(py::repr(obj))));
  for (py::handle h : obj) {
    if (!PyLong_Check(h.ptr()) && !PyIndex_Check(h.ptr()))
      throw TypeError(str("shape entries must be ints, got ", std::string(py::repr(h)), " in ",
                          std::string(py::repr(obj))));
    s.push_back(py::reinterpret_borrow<py::object>(h).cast<int64_t>());
  }
  return s;
}

Shape shape_from_args(const py::args& args) {
  if (args.size() == 1 && !PyLong_Check(args[0].ptr())) return shape_from_obj(args[0]);
  return shape_from_obj(args);
}

bool scalar_kind(py::handle obj, ScalarKind& kind) {
  if (PyBool_Check(obj.ptr())) {
    kind = ScalarKind::Bool;
    return true;
  }
  if (PyLong_Check(obj.ptr())) {
    kind = ScalarKind::Int;
    return true;
  }
  if (PyFloat_Check(obj.ptr())) {
    kind = ScalarKind::Float;
    return true;
  }
  return false;
}

Tensor scalar_like(py::handle obj, ScalarKind kind, const Tensor& like) {
  const DType dt = promote_with_scalar(like.dtype(), kind);
  if (dt == DType::Int64 && kind != ScalarKind::Float) {
    Tensor t = Tensor::empty({}, DType::Int64);
    *t.data<int64_t>() = obj.cast<int64_t>();  // exact, also beyond 2**53
    return to_device(t, like.device());
  }
  return scalar_tensor(obj.cast<double>(), dt, like.device());
}

Device device_arg(py::handle obj, Device dflt) {
  if (obj.is_none()) return dflt;
  if (py::isinstance<Device>(obj)) return obj.cast<Device>();
  if (py::isinstance<py::str>(obj)) return parse_device(obj.cast<std::string>());
  if (PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
    const int64_t i = obj.cast<int64_t>();
    DLCORE_CHECK(i >= 0 && i < 100000, ValueError, "device index must be non-negative, got ", i);
    return Device{DeviceType::CUDA, static_cast<int>(i)};
  }
  throw TypeError(str("expected a device ('cpu', 'cuda', 'cuda:N' or a dlcore.device), got ",
                      std::string(py::repr(obj))));
}

Tensor as_tensor(py::handle obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  return py::module_::import("dlcore").attr("tensor")(obj).cast<Tensor>();
}

void bind_dtype_and_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    }
  });
  py::enum_<DType>(m, "dtype")
      .value("bool", DType::Bool)
      .value("int64", DType::Int64)
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .def("__repr__", [](DType d) { return std::string("dlcore.") + dtype_name(d); })
      .def("__str__", [](DType d) { return std::string("dlcore.") + dtype_name(d); })
      .def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); });
}

void bind_functions(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the number of OpenMP threads kernels use.");
  m.def("get_num_threads", &get_num_threads, "Number of OpenMP threads kernels use.");
  m.def("gemm_isa", &kernels::gemm_isa, "SIMD path the GEMM kernel picked at run time.");
  m.def("_parse_dtype", [](py::handle d) { return parse_dtype(d); });
  m.def("promote_types", [](py::handle a, py::handle b) { return promote(parse_dtype(a), parse_dtype(b)); },
        py::arg("type1"), py::arg("type2"));

  py::class_<Generator>(m, "Generator")
      .def(py::init<uint64_t>(), py::arg("seed") = 67280421310721ULL)
      .def("manual_seed", [](Generator& g, uint64_t s) -> Generator& { g.seed_with(s); return g; },
           py::arg("seed"), py::return_value_policy::reference_internal)
      .def("initial_seed", &Generator::seed)
      .def("get_state", &Generator::get_state)
      .def("set_state", [](Generator& g, const std::array<uint64_t, 6>& st) {
        DLCORE_CHECK(st[0] | st[1] | st[2] | st[3], ValueError, "set_state: the all-zero state is invalid");
        g.set_state(st);
      }, py::arg("state"));
  m.def("default_generator", &default_generator, py::return_value_policy::reference);

  // ---- devices ----
  py::class_<Device>(m, "device", "A device: dlcore.device('cpu'), dlcore.device('cuda:0'), dlcore.device('cuda', 1).")
      .def(py::init([](py::handle d, py::object index) {
        Device dev = device_arg(d);
        if (!index.is_none()) {
          DLCORE_CHECK(dev.type == DeviceType::CUDA, ValueError, "device: only cuda takes an index");
          dev.index = index.cast<int>();
          DLCORE_CHECK(dev.index >= 0, ValueError, "device index must be non-negative, got ", dev.index);
        }
        return dev;
      }), py::arg("device"), py::arg("index") = py::none())
      .def_property_readonly("type", [](const Device& d) { return d.type == DeviceType::CPU ? "cpu" : "cuda"; })
      .def_property_readonly("index", [](const Device& d) -> py::object {
        if (d.type == DeviceType::CPU) return py::none();
        return py::int_(d.index);
      })
      .def("__str__", &Device::str)
      .def("__repr__", [](const Device& d) {
        return d.type == DeviceType::CPU ? std::string("device(type='cpu')")
                                         : str("device(type='cuda', index=", d.index, ")");
      })
      .def("__eq__", [](const Device& d, py::handle o) -> py::object {
        if (py::isinstance<Device>(o)) return py::bool_(d == o.cast<Device>());
        if (py::isinstance<py::str>(o)) {
          try {
            return py::bool_(d == parse_device(o.cast<std::string>()));
          } catch (const ValueError&) {
            return py::bool_(false);
          }
        }
        return py::reinterpret_borrow<py::object>(Py_NotImplemented);
      })
      .def("__hash__", [](const Device& d) { return py::hash(py::str(d.str())); });

  // ---- CUDA runtime (valid in every build) ----
  py::module_ cu = m.def_submodule("cuda", "CUDA runtime queries");
  cu.def("is_built", &cuda::is_built);
  cu.def("device_count", &cuda::device_count);
  cu.def("device_name", &cuda::device_name, py::arg("index") = 0);
  cu.def("gemm_backend", &cuda::gemm_backend);
  cu.def("memory_stats", [](int index) {
    const cuda::MemoryStats s = cuda::memory_stats(index);
    py::dict d;
    d["allocated_bytes"] = s.allocated;
    d["reserved_bytes"] = s.reserved;
    d["peak_allocated_bytes"] = s.peak_allocated;
    d["malloc_calls"] = s.malloc_calls;
    return d;
  }, py::arg("index") = 0);
  cu.def("empty_cache", &cuda::empty_cache);
  cu.def("synchronize", [] {
    py::gil_scoped_release release;
    cuda::synchronize();
  });

  // ---- creation (the Python layer adds tensor(), *_like and argument sugar) ----
  m.def("_full", [](const Shape& s, double v, py::handle dt, py::handle dev) {
    return full(s, v, parse_dtype_or(dt, DType::Float32), device_arg(dev));
  }, py::arg("shape"), py::arg("value"), py::arg("dtype"), py::arg("device") = py::none());
  m.def("_full_int", [](const Shape& s, int64_t v, py::handle dev) {
    const Device d = device_arg(dev);
    backend_for(d);
    Tensor t = Tensor::empty(s, DType::Int64);
    int64_t* p = t.data<int64_t>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = v;
    return to_device(t, d);
  }, py::arg("shape"), py::arg("value"), py::arg("device") = py::none());
  m.def("_empty", [](const Shape& s, py::handle dt, py::handle dev) {
    return Tensor::empty(s, parse_dtype_or(dt, DType::Float32), device_arg(dev));
  }, py::arg("shape"), py::arg("dtype"), py::arg("device") = py::none());
  m.def("_arange", [](double a, double b, double s, py::handle dt, py::handle dev) {
    return arange(a, b, s, parse_dtype(dt), device_arg(dev));
  }, py::arg("start"), py::arg("end"), py::arg("step"), py::arg("dtype"), py::arg("device") = py::none());
  m.def("_arange_int", [](int64_t a, int64_t b, int64_t s, py::handle dev) {  // exact for all int64 values
    DLCORE_CHECK(s != 0, ValueError, "arange: step must be non-zero");
    const Device d = device_arg(dev);
    backend_for(d);
    // spans and steps in uint64 so that ranges over the whole int64 line do not overflow
    const uint64_t span = s > 0 ? (b > a ? static_cast<uint64_t>(b) - static_cast<uint64_t>(a) : 0)
                                : (a > b ? static_cast<uint64_t>(a) - static_cast<uint64_t>(b) : 0);
    const uint64_t step = s > 0 ? static_cast<uint64_t>(s) : static_cast<uint64_t>(0) - static_cast<uint64_t>(s);
    const int64_t n = span == 0 ? 0 : static_cast<int64_t>((span - 1) / step + 1);
    Tensor t = Tensor::empty({n}, DType::Int64);
    int64_t* p = t.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(i) * static_cast<uint64_t>(s));
    return to_device(t, d);
  }, py::arg("start"), py::arg("end"), py::arg("step"), py::arg("device") = py::none());
  m.def("_linspace", [](double a, double b, int64_t n, py::handle dt, py::handle dev) {
    return linspace(a, b, n, parse_dtype_or(dt, DType::Float32), device_arg(dev));
  }, py::arg("start"), py::arg("end"), py::arg("steps"), py::arg("dtype"), py::arg("device") = py::none());
  m.def("_eye", [](int64_t n, int64_t k, py::handle dt, py::handle dev) {
    return eye(n, k, parse_dtype_or(dt, DType::Float32), device_arg(dev));
  }, py::arg("n"), py::arg("m"), py::arg("dtype"), py::arg("device") = py::none());
  m.def("_rand", [](const Shape& s, py::handle dt, Generator* g, py::handle dev) {
    return rand(s, parse_dtype_or(dt, DType::Float32), g, device_arg(dev));
  }, py::arg("shape"), py::arg("dtype"), py::arg("generator").none(true), py::arg("device") = py::none());
  m.def("_randn", [](const Shape& s, py::handle dt, Generator* g, py::handle dev) {
    return randn(s, parse_dtype_or(dt, DType::Float32), g, device_arg(dev));
  }, py::arg("shape"), py::arg("dtype"), py::arg("generator").none(true), py::arg("device") = py::none());
  m.def("_randint", [](int64_t lo, int64_t hi, const Shape& s, py::handle dt, Generator* g, py::handle dev) {
    return randint(lo, hi, s, parse_dtype_or(dt, DType::Int64), g, device_arg(dev));
  }, py::arg("low"), py::arg("high"), py::arg("shape"), py::arg("dtype"), py::arg("generator").none(true),
     py::arg("device") = py::none());
  m.def("randperm", [](int64_t n, Generator* g, py::handle dev) { return randperm(n, g, device_arg(dev)); },
        py::arg("n"), py::arg("generator") = nullptr, py::kw_only(), py::arg("device") = py::none());
  m.def("_to_device", [](const Tensor& t, py::handle dev) {
    const Device d = device_arg(dev);
    return maybe_nogil(t.numel(), [&] { return to_device(t, d); });
  }, py::arg("tensor"), py::arg("device"));

  // ---- joins, selection ----
  m.def("cat", [](const std::vector<Tensor>& xs, int64_t dim) {
    int64_t work = 0;
    for (const Tensor& x : xs) work += x.numel();
    return maybe_nogil(work, [&] { return cat(xs, dim); });
  }, py::arg("tensors"), py::arg("dim") = 0);
  m.def("stack", [](const std::vector<Tensor>& xs, int64_t dim) {
    int64_t work = 0;
    for (const Tensor& x : xs) work += x.numel();
    return maybe_nogil(work, [&] { return stack(xs, dim); });
  }, py::arg("tensors"), py::arg("dim") = 0);
  m.def("where", [](py::handle c, py::handle a, py::handle b) {
    const Tensor tc = as_tensor(c), ta = as_tensor(a), tb = as_tensor(b);
    return maybe_nogil(tc.numel() + ta.numel() + tb.numel(), [&] { return where(tc, ta, tb); });
  }, py::arg("condition"), py::arg("input"), py::arg("other"));
}

}  // namespace dlcore::py_bind

PYBIND11_MODULE(_core, m) {
  using namespace dlcore::py_bind;
  m.doc() = "dlcore C++ core";
#ifdef DLCORE_VERSION
  m.attr("__version__") = DLCORE_VERSION;
#endif
  bind_dtype_and_errors(m);
  bind_tensor(m);
  bind_functions(m);
  bind_nn(m);
  bind_optim(m);
  bind_data(m);
}
