#pragma once
// Helpers shared by the binding files. Only cpp/bindings knows Python exists.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dlcore/ops.h"
#include "dlcore/parallel.h"

namespace py = pybind11;

namespace dlcore::py_bind {

// dtype from a dlcore.dtype, a string ("float32"), a numpy dtype or a Python type
// (float -> float64, int -> int64, bool -> bool, as PyTorch).
DType parse_dtype(py::handle obj);
// Optional dtype: `dflt` when obj is None.
DType parse_dtype_or(py::handle obj, DType dflt);
// Shape from (2, 3), [2, 3] or varargs 2, 3.
Shape shape_from_args(const py::args& args);
Shape shape_from_obj(py::handle obj);
// Any tensor-like (Tensor, numpy array, list, scalar) as a Tensor; copies unless it is a Tensor.
Tensor as_tensor(py::handle obj);
// Python int/float/bool scalar kind, or false when obj is not a Python scalar.
bool scalar_kind(py::handle obj, ScalarKind& kind);
// A 0-d tensor holding a Python scalar in the weakly promoted dtype against `t`.
// A 0-d tensor on `like`'s device holding a Python scalar, in the dtype weakly promoted against `like`.
Tensor scalar_like(py::handle obj, ScalarKind kind, const Tensor& like);
// A device from None (-> dflt), a dlcore.device, "cpu" / "cuda" / "cuda:N", or an int N (-> cuda:N).
Device device_arg(py::handle obj, Device dflt = Device{});

// Run f with the GIL released when the work is large enough to matter.
template <class F>
auto maybe_nogil(int64_t work, F&& f) -> decltype(f()) {
  if (work >= kParallelGrain) {
    py::gil_scoped_release release;
    return f();
  }
  return f();
}

py::array to_numpy(const Tensor& t);
Tensor from_numpy(const py::array& a);

void bind_dtype_and_errors(py::module_& m);
void bind_tensor(py::module_& m);
void bind_interop(py::module_& m, py::class_<Tensor>& cls);
void bind_functions(py::module_& m);
void bind_autograd(py::module_& m, py::class_<Tensor>& cls);
void bind_nn(py::module_& m);
void bind_optim(py::module_& m);
void bind_data(py::module_& m);

}  // namespace dlcore::py_bind
