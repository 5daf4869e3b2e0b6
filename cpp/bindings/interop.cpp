// Zero-copy exchange with numpy (arrays and the buffer protocol) and with any
// framework through DLPack.
#include <cstring>

#include "common.h"
#include "dlcore/autograd.h"
#include "dlcore/backend.h"
#include "dlcore/dlpack.h"

namespace dlcore::py_bind {

namespace {

const char* numpy_format(DType d) {
  switch (d) {
    case DType::Bool: return "?";
    case DType::Int64: return "q";
    case DType::Float32: return "f";
    case DType::Float64: return "d";
  }
  return "";
}

// Element extent [lo, hi] (relative to the view's first element) of a strided view.
void extent(const Shape& shape, const Shape& strides, int64_t& lo, int64_t& hi) {
  lo = hi = 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t span = (shape[i] - 1) * strides[i];
    if (span < 0) lo += span;
    else hi += span;
  }
}

// A release callback that drops a Python reference, taking the GIL (the last
// tensor may die in a thread that released it) and doing nothing once the
// interpreter is gone.
std::function<void()> python_release(py::object owner) {
  auto* holder = new py::object(std::move(owner));
  return [holder] {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    delete holder;
  };
}

// ---- DLPack export ----
struct ExportCtx {
  Tensor tensor;  // keeps the storage alive
  Shape shape, strides;
};

DLDataType dl_dtype(DType d) {
  switch (d) {
    case DType::Bool: return DLDataType{kDLBool, 8, 1};
    case DType::Int64: return DLDataType{kDLInt, 64, 1};
    case DType::Float32: return DLDataType{kDLFloat, 32, 1};
    case DType::Float64: return DLDataType{kDLFloat, 64, 1};
  }
  return DLDataType{0, 0, 0};
}

void fill_dltensor(DLTensor& dl, ExportCtx* ctx) {
  const Tensor& t = ctx->tensor;
  dl.data = t.storage()->data();
  dl.byte_offset = static_cast<uint64_t>(t.offset() * itemsize(t.dtype()));
  dl.device = t.device().type == DeviceType::CUDA ? DLDevice{kDLCUDA, t.device().index} : DLDevice{kDLCPU, 0};
  dl.ndim = static_cast<int32_t>(t.dim());
  dl.dtype = dl_dtype(t.dtype());
  dl.shape = ctx->shape.data();
  dl.strides = ctx->strides.data();
}

void legacy_capsule_destructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor")) {  // never consumed: we still own it
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  }
}
void versioned_capsule_destructor(PyObject* cap) {
  if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    if (m && m->deleter) m->deleter(m);
  }
}

py::object to_dlpack(const Tensor& t_in, py::handle stream, py::handle max_version, py::handle dl_device,
                     py::handle copy) {
  const bool on_cuda = t_in.device().type == DeviceType::CUDA;
  if (!dl_device.is_none()) {
    auto dev = dl_device.cast<std::pair<int, int>>();
    const std::pair<int, int> own{on_cuda ? kDLCUDA : kDLCPU, on_cuda ? t_in.device().index : 0};
    if (dev != own) {
      PyErr_SetString(PyExc_BufferError, str("__dlpack__: cannot export a ", t_in.device().str(),
                                              " tensor to DLPack device (", dev.first, ", ", dev.second,
                                              ") without a copy across devices").c_str());
      throw py::error_already_set();
    }
  }
  if (on_cuda) {
    // dlcore queues its kernels on the legacy default stream; whatever stream the
    // consumer names, the data must be ready when it reads: wait for our work.
    if (!stream.is_none() && !PyLong_Check(stream.ptr()))
      throw ValueError(str("__dlpack__: stream must be None or an int, got ", std::string(py::repr(stream))));
    backend_for(t_in.device()).synchronize();
  } else if (!stream.is_none() && !(PyLong_Check(stream.ptr()) && stream.cast<int64_t>() == -1)) {
    throw ValueError(str("__dlpack__: stream must be None for a cpu tensor, got ", std::string(py::repr(stream))));
  }
  // Negative strides (reversed views) are not portable through DLPack (PyTorch aborts on
  // them), so such a tensor is exported as a compact copy, which copy=False forbids.
  bool negative = false;
  for (int64_t st : t_in.strides()) negative = negative || st < 0;
  if (negative && !copy.is_none() && !copy.cast<bool>()) {
    PyErr_SetString(PyExc_BufferError,
                    "__dlpack__(copy=False): a view with negative strides cannot be exported without a copy");
    throw py::error_already_set();
  }
  const bool do_copy = negative || (!copy.is_none() && copy.cast<bool>());
  const Tensor t = do_copy ? clone(t_in) : t_in;  // shape and strides of what is exported
  // Another framework may write the memory without bumping our version counter: a
  // noted value range (see to_device) can no longer be trusted.
  t_in.storage()->forget_int_range();
  auto* ctx = new ExportCtx{t, t.shape(), t.strides()};
  bool versioned = false;
  if (!max_version.is_none()) {
    auto v = max_version.cast<std::pair<int, int>>();
    versioned = v.first >= 1;
  }
  if (versioned) {
    auto* m = new DLManagedTensorVersioned{};
    m->version = DLPackVersion{1, 0};
    m->manager_ctx = ctx;
    m->deleter = [](DLManagedTensorVersioned* self) {
      delete static_cast<ExportCtx*>(self->manager_ctx);
      delete self;
    };
    m->flags = do_copy ? DLPACK_FLAG_BITMASK_IS_COPIED : 0;
    fill_dltensor(m->dl_tensor, ctx);
    PyObject* cap = PyCapsule_New(m, "dltensor_versioned", versioned_capsule_destructor);
    if (!cap) {
      m->deleter(m);
      throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(cap);
  }
  auto* m = new DLManagedTensor{};
  m->manager_ctx = ctx;
  m->deleter = [](DLManagedTensor* self) {
    delete static_cast<ExportCtx*>(self->manager_ctx);
    delete self;
  };
  fill_dltensor(m->dl_tensor, ctx);
  PyObject* cap = PyCapsule_New(m, "dltensor", legacy_capsule_destructor);
  if (!cap) {
    m->deleter(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(cap);
}

// ---- DLPack import ----
DType dtype_from_dl(const DLDataType& t) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 32) return DType::Float32;
    if (t.code == kDLFloat && t.bits == 64) return DType::Float64;
    if (t.code == kDLInt && t.bits == 64) return DType::Int64;
    if (t.code == kDLBool && t.bits == 8) return DType::Bool;
  }
  throw TypeError(str("from_dlpack: unsupported dtype (DLPack code ", int(t.code), ", ", int(t.bits), " bits, ",
                      t.lanes, " lanes); dlcore supports float32, float64, int64 and bool"));
}

// Where a DLPack device maps to a dlcore device; RuntimeError when this build cannot use it.
Device device_from_dl(int type, int id) {
  if (type == kDLCPU || type == kDLCUDAHost) return Device{};
  if (type == kDLCUDA && has_backend(DeviceType::CUDA)) return Device{DeviceType::CUDA, id};
  throw RuntimeError(str("from_dlpack: the tensor is on DLPack device type ", type,
                         has_backend(DeviceType::CUDA) ? "; dlcore supports cpu (1) and cuda (2)"
                                                       : "; this build of dlcore supports cpu only (2 = cuda needs "
                                                         "a DLCORE_CUDA=ON build)"));
}

Tensor wrap_dltensor(const DLTensor& dl, std::function<void()> release) {
  Device device;
  try {
    device = device_from_dl(dl.device.device_type, dl.device.device_id);
  } catch (...) {
    release();
    throw;
  }
  DType dt;
  try {
    dt = dtype_from_dl(dl.dtype);
  } catch (...) {
    release();
    throw;
  }
  Shape shape(dl.shape, dl.shape + dl.ndim);
  Shape strides = dl.strides ? Shape(dl.strides, dl.strides + dl.ndim) : contiguous_strides(shape);
  int64_t lo, hi;
  extent(shape, strides, lo, hi);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  char* first = static_cast<char*>(dl.data) + dl.byte_offset;
  const int64_t isz = itemsize(dt);
  char* base = n == 0 ? first : first + lo * isz;
  const size_t nbytes = n == 0 ? 0 : static_cast<size_t>((hi - lo + 1) * isz);
  auto storage = std::make_shared<Storage>(base, nbytes, device, std::move(release));
  return Tensor::make_view(storage, shape, strides, n == 0 ? 0 : -lo, dt);
}

Tensor from_dlpack(py::handle obj) {
  py::object cap;
  if (PyCapsule_CheckExact(obj.ptr())) {
    cap = py::reinterpret_borrow<py::object>(obj);
  } else {
    if (!py::hasattr(obj, "__dlpack__"))
      throw TypeError(str("from_dlpack: expected an object with __dlpack__ or a DLPack capsule, got ",
                          std::string(py::str(py::type::of(obj).attr("__name__")))));
    py::object stream = py::none();
    if (py::hasattr(obj, "__dlpack_device__")) {
      auto dev = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
      // 1 = the legacy default stream, the one dlcore's kernels run on: the producer
      // makes its pending work visible to it.
      if (device_from_dl(dev.first, dev.second).type == DeviceType::CUDA) stream = py::int_(1);
    }
    try {
      cap = obj.attr("__dlpack__")(py::arg("stream") = stream, py::arg("max_version") = py::make_tuple(1, 0));
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      cap = obj.attr("__dlpack__")(py::arg("stream") = stream);
    }
  }
  PyObject* c = cap.ptr();
  if (PyCapsule_IsValid(c, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, "dltensor_versioned"));
    if (m->version.major > 1)
      throw RuntimeError(str("from_dlpack: DLPack version ", m->version.major, ".", m->version.minor,
                             " is newer than the 1.x this build understands"));
    PyCapsule_SetName(c, "used_dltensor_versioned");
    return wrap_dltensor(m->dl_tensor, [m] { if (m->deleter) m->deleter(m); });
  }
  if (PyCapsule_IsValid(c, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, "dltensor"));
    PyCapsule_SetName(c, "used_dltensor");
    return wrap_dltensor(m->dl_tensor, [m] { if (m->deleter) m->deleter(m); });
  }
  throw ValueError("from_dlpack: the capsule is not a DLPack tensor, or it was already consumed");
}

py::object py_item(const Tensor& t_in) {
  DLCORE_CHECK(t_in.numel() == 1, ValueError, "only one-element tensors can be converted to Python scalars, got shape ",
               shape_str(t_in.shape()));
  const Tensor t = on_host(t_in);
  switch (t.dtype()) {
    case DType::Bool: return py::bool_(*t.data<bool>());
    case DType::Int64: return py::int_(*t.data<int64_t>());
    case DType::Float32: return py::float_(*t.data<float>());
    case DType::Float64: return py::float_(*t.data<double>());
  }
  return py::none();
}

}  // namespace

void check_host(const Tensor& t, const char* what) {
  DLCORE_CHECK(t.device().type == DeviceType::CPU, TypeError, "cannot ", what, " a ", t.device().str(),
               " tensor: numpy and the buffer protocol see host memory only; copy it to the host first with .cpu()");
}

py::array to_numpy(const Tensor& t) {
  check_host(t, "convert to numpy");
  const int64_t isz = itemsize(t.dtype());
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides;
  for (int64_t s : t.strides()) strides.push_back(s * isz);
  auto* keep = new StoragePtr(t.storage());
  py::capsule base(keep, [](void* p) { delete static_cast<StoragePtr*>(p); });
  return py::array(py::dtype(numpy_format(t.dtype())), shape, strides, t.raw_data(), base);
}

Tensor from_numpy(const py::array& a) {
  const py::dtype dt = a.dtype();
  const char kind = dt.kind();
  const py::ssize_t isz = dt.itemsize();
  DType d;
  if (kind == 'f' && isz == 4) d = DType::Float32;
  else if (kind == 'f' && isz == 8) d = DType::Float64;
  else if (kind == 'i' && isz == 8) d = DType::Int64;
  else if (kind == 'b' && isz == 1) d = DType::Bool;
  else
    throw TypeError(str("from_numpy: unsupported dtype ", std::string(py::str(dt)),
                        "; dlcore shares float32, float64, int64 and bool arrays (dlcore.tensor() converts others)"));
  DLCORE_CHECK(a.writeable(), ValueError,
               "from_numpy: the array is read-only (e.g. np.broadcast_to or a bytes buffer); a tensor shares "
               "memory and may be written in place, so pass a writable array (a.copy()) or use dlcore.tensor()");
  const char bo = dt.attr("byteorder").cast<std::string>()[0];
  DLCORE_CHECK(bo == '=' || bo == '|' || bo == (PY_LITTLE_ENDIAN ? '<' : '>'), TypeError,
               "from_numpy: non-native byte order ", std::string(py::str(dt)));
  Shape shape(a.shape(), a.shape() + a.ndim()), strides;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    DLCORE_CHECK(a.strides()[i] % isz == 0, ValueError, "from_numpy: stride ", a.strides()[i],
                 " bytes is not a multiple of the item size ", isz);
    strides.push_back(a.strides()[i] / isz);
  }
  int64_t lo, hi;
  extent(shape, strides, lo, hi);
  const int64_t n = a.size();
  char* first = static_cast<char*>(const_cast<void*>(a.data()));
  char* base = n == 0 ? first : first + lo * isz;
  const size_t nbytes = n == 0 ? 0 : static_cast<size_t>((hi - lo + 1) * isz);
  auto storage = std::make_shared<Storage>(base, nbytes, Device{}, python_release(a));
  return Tensor::make_view(storage, shape, strides, n == 0 ? 0 : -lo, d);
}

void bind_interop(py::module_& m, py::class_<Tensor>& cls) {
  cls.def_buffer([](const Tensor& t) -> py::buffer_info {
    check_host(t, "export through the buffer protocol");
    auto& ex = t.impl()->exported;
    if (ex.empty() || ex.back() != t.storage()) ex.push_back(t.storage());
    const int64_t isz = itemsize(t.dtype());
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end()), strides;
    for (int64_t s : t.strides()) strides.push_back(s * isz);
    return py::buffer_info(t.raw_data(), isz, numpy_format(t.dtype()), t.dim(), shape, strides);
  });
  cls.def("numpy", &to_numpy, "A numpy array sharing this tensor's memory (no copy).");
  cls.def("__array__", [](const Tensor& t, py::handle dtype, py::handle copy) -> py::object {
    py::object a = to_numpy(t);
    if (!dtype.is_none()) a = a.attr("astype")(dtype, py::arg("copy") = false);
    if (!copy.is_none() && copy.cast<bool>()) a = a.attr("copy")();
    return a;
  }, py::arg("dtype") = py::none(), py::kw_only(), py::arg("copy") = py::none());
  cls.def("item", &py_item);
  cls.def("__float__", [](const Tensor& t) { return py_item(t).cast<double>(); });
  cls.def("__int__", [](const Tensor& t) {
    py::object v = py_item(t);
    return py::int_(py::reinterpret_steal<py::object>(PyNumber_Long(v.ptr())));
  });
  cls.def("__bool__", [](const Tensor& t) {
    DLCORE_CHECK(t.numel() == 1, ValueError, "the truth value of a tensor with ", t.numel(),
                 " elements is ambiguous (shape ", shape_str(t.shape()), "); use .any() or .all()");
    return py::bool_(py_item(t)).cast<bool>();
  });
  cls.def("__dlpack__", &to_dlpack, py::kw_only(), py::arg("stream") = py::none(),
          py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(), py::arg("copy") = py::none());
  cls.def("__dlpack_device__", [](const Tensor& t) {
    return t.device().type == DeviceType::CUDA ? py::make_tuple(int(kDLCUDA), t.device().index)
                                               : py::make_tuple(int(kDLCPU), 0);
  });
  m.def("from_numpy", [](py::handle h) {
    if (!py::isinstance<py::array>(h))
      throw TypeError(str("from_numpy: expected a numpy.ndarray, got ", std::string(py::str(py::type::of(h).attr("__name__")))));
    return from_numpy(py::reinterpret_borrow<py::array>(h));
  }, py::arg("array"), "A tensor sharing the numpy array's memory (no copy).");
  m.def("from_dlpack", &from_dlpack, py::arg("ext_tensor"), "A tensor sharing memory with a DLPack producer.");
}

}  // namespace dlcore::py_bind
