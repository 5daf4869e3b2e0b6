// Autograd bindings: backward/grad, modes, grad_fn, hooks, forward-mode duals.
#include "common.h"
#include "dlcore/autograd.h"

namespace dlcore::py_bind {

namespace {

// A Python callable held from C++: taken and dropped under the GIL, since the
// engine runs with the GIL released.
std::shared_ptr<py::function> hold(py::function f) {
  return std::shared_ptr<py::function>(new py::function(std::move(f)), [](py::function* p) {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    delete p;
  });
}

GradHook python_hook(py::function fn) {
  auto f = hold(std::move(fn));
  return [f](const Tensor& g) -> Tensor {
    py::gil_scoped_acquire gil;
    py::object r = (*f)(g);
    if (r.is_none()) return Tensor();
    if (!py::isinstance<Tensor>(r))
      throw TypeError(str("a gradient hook must return None or a Tensor, got ",
                          std::string(py::str(py::type::of(r).attr("__name__")))));
    return r.cast<Tensor>();  // its shape and device are checked by the engine (run_hooks)
  };
}

}  // namespace

void bind_autograd(py::module_& m, py::class_<Tensor>& cls) {
  py::class_<Node, std::shared_ptr<Node>>(m, "Node")
      .def("name", &Node::name)
      .def("__repr__", [](const Node& n) { return "<" + n.name() + ">"; })
      .def_property_readonly("next_functions", [](const Node& n) {
        py::list out;
        for (const Edge& e : n.next) {
          if (e.node) out.append(py::make_tuple(py::cast(e.node), 0));
          else if (e.leaf) out.append(py::make_tuple(py::str("AccumulateGrad"), 0));
          else out.append(py::make_tuple(py::none(), 0));
        }
        return py::tuple(out);
      });

  cls.def_property("requires_grad", &Tensor::requires_grad, [](const Tensor& t, bool v) { set_requires_grad(t, v); })
      .def("requires_grad_", [](py::object self, bool v) {
        set_requires_grad(self.cast<const Tensor&>(), v);
        return self;
      }, py::arg("requires_grad") = true)
      .def_property("grad", [](const Tensor& t) -> py::object {
        if (!t.impl()->grad) return py::none();
        return py::cast(Tensor(t.impl()->grad));
      }, [](const Tensor& t, py::object g) {
        if (g.is_none()) {
          t.impl()->grad.reset();
          return;
        }
        Tensor gt = g.cast<Tensor>();
        DLCORE_CHECK(gt.shape() == t.shape(), ValueError, "assigned grad of shape ", shape_str(gt.shape()),
                     " to a tensor of shape ", shape_str(t.shape()));
        DLCORE_CHECK(gt.dtype() == t.dtype(), TypeError, "assigned grad of dtype ", dtype_name(gt.dtype()),
                     " to a tensor of dtype ", dtype_name(t.dtype()));
        DLCORE_CHECK(gt.device() == t.device(), ValueError, "assigned grad on ", gt.device().str(),
                     " to a tensor on ", t.device().str());
        t.impl()->grad = gt.impl_ptr();
      })
      .def_property("data", [](const Tensor& t) { return detach(t); }, [](const Tensor& t, const Tensor& src) {
        // t.data = src: t keeps its identity and autograd flags but now views src's memory
        // (dtype and shape may change; a gradient of another dtype/shape is dropped).
        DLCORE_CHECK(t.is_leaf(), RuntimeError, "only a leaf tensor's .data can be replaced");
        TensorImpl* d = t.impl();
        const TensorImpl* s = src.impl();
        if (d->grad && (s->dtype != d->dtype || s->shape != d->shape)) d->grad.reset();
        d->storage = s->storage;
        d->shape = s->shape;
        d->strides = s->strides;
        d->offset = s->offset;
        d->dtype = s->dtype;
        d->is_view = false;
      })
      .def_property_readonly("grad_fn", [](const Tensor& t) -> py::object {
        if (!t.grad_fn()) return py::none();
        return py::cast(t.grad_fn());
      })
      .def_property_readonly("is_leaf", &Tensor::is_leaf)
      .def("detach", &detach)
      .def("detach_", [](py::object self) {
        const Tensor& t = self.cast<const Tensor&>();
        t.impl()->grad_fn.reset();
        t.impl()->requires_grad = false;
        return self;
      })
      .def("retain_grad", [](const Tensor& t) { retain_grad(t); })
      .def("_register_hook", [](const Tensor& t, py::function fn) { register_hook(t, python_hook(std::move(fn))); });

  m.def("_run_backward", [](const std::vector<Tensor>& roots, std::vector<std::optional<Tensor>> grads,
                            bool retain_graph, bool create_graph, const std::vector<Tensor>& inputs,
                            bool allow_unused) {
    std::vector<Tensor> gs;
    for (auto& g : grads) gs.push_back(g ? *g : Tensor());
    std::vector<Tensor> r;
    {
      py::gil_scoped_release release;
      r = run_backward(roots, gs, retain_graph, create_graph, inputs, allow_unused);
    }
    py::list out;
    for (const Tensor& t : r) out.append(t.defined() ? py::cast(t) : py::none());
    return out;
  });
  m.def("is_grad_enabled", &grad_enabled);
  m.def("_set_grad_enabled", &set_grad_enabled, py::arg("mode"));
  m.def("_forward_ad_enabled", &forward_ad_enabled);
  m.def("_set_forward_ad_enabled", &set_forward_ad_enabled, py::arg("mode"));
  m.def("differentiable_ops", &differentiable_ops, "Names of every op that records an autograd node.");
  m.def("_make_dual", [](const Tensor& primal, const Tensor& tangent) {
    DLCORE_CHECK(is_floating(primal.dtype()), TypeError, "jvp: primals must be float tensors, got ",
                 dtype_name(primal.dtype()));
    DLCORE_CHECK(tangent.shape() == primal.shape(), ValueError, "jvp: tangent of shape ", shape_str(tangent.shape()),
                 " for a primal of shape ", shape_str(primal.shape()));
    DLCORE_CHECK(tangent.device() == primal.device(), ValueError, "jvp: the tangent is on ", tangent.device().str(),
                 " but its primal is on ", primal.device().str());
    Tensor d = detach(primal);
    d.impl()->tangent = to_dtype(tangent, primal.dtype()).impl_ptr();
    return d;
  });
  m.def("_tangent", [](const Tensor& t) -> py::object {
    if (!t.impl()->tangent) return py::none();
    return py::cast(Tensor(t.impl()->tangent));
  });
  m.def("sum_to", &sum_to, py::arg("input"), py::arg("shape"));
  m.def("_slice_backward", &slice_backward);
  m.def("_index_add", &index_add);
}

}  // namespace dlcore::py_bind
