// Bindings of the nn ops (dlcore._core.nn); dlcore.nn.functional adds PyTorch's argument forms.
#include "common.h"
#include "dlcore/nn.h"

namespace dlcore::py_bind {

namespace {
Tensor opt(const std::optional<Tensor>& t) { return t ? *t : Tensor(); }
using Pair = std::pair<int64_t, int64_t>;
Conv2dArgs conv_args(Pair stride, Pair padding, Pair dilation, int64_t groups) {
  return Conv2dArgs{stride.first, stride.second, padding.first, padding.second, dilation.first, dilation.second,
                    groups};
}
}  // namespace

void bind_nn(py::module_& root) {
  py::module_ m = root.def_submodule("nn", "C++ neural-network ops");
  m.def("conv2d", [](const Tensor& x, const Tensor& w, std::optional<Tensor> b, Pair stride, Pair padding,
                     Pair dilation, int64_t groups) {
    const Conv2dArgs a = conv_args(stride, padding, dilation, groups);
    py::gil_scoped_release release;
    return conv2d(x, w, opt(b), a);
  }, py::arg("input"), py::arg("weight"), py::arg("bias").none(true), py::arg("stride"), py::arg("padding"),
     py::arg("dilation"), py::arg("groups"));
  m.def("conv2d_input_grad", [](const Tensor& dy, const Tensor& w, const Shape& xs, Pair stride, Pair padding,
                                Pair dilation, int64_t groups) {
    const Conv2dArgs a = conv_args(stride, padding, dilation, groups);
    py::gil_scoped_release release;
    return conv2d_input_grad(dy, w, xs, a);
  });
  m.def("conv2d_weight_grad", [](const Tensor& x, const Tensor& dy, const Shape& ws, Pair stride, Pair padding,
                                 Pair dilation, int64_t groups) {
    const Conv2dArgs a = conv_args(stride, padding, dilation, groups);
    py::gil_scoped_release release;
    return conv2d_weight_grad(x, dy, ws, a);
  });
  auto pool_args = [](Pair k, Pair s, Pair p, Pair d, bool ceil_mode) {
    return Pool2dArgs{k.first, k.second, s.first, s.second, p.first, p.second, d.first, d.second, ceil_mode};
  };
  m.def("max_pool2d", [pool_args](const Tensor& x, Pair k, Pair s, Pair p, Pair d, bool ceil_mode) {
    const Pool2dArgs a = pool_args(k, s, p, d, ceil_mode);
    py::gil_scoped_release release;
    return max_pool2d_with_indices(x, a);
  });
  m.def("avg_pool2d", [pool_args](const Tensor& x, Pair k, Pair s, Pair p, bool ceil_mode, bool count_include_pad) {
    const Pool2dArgs a = pool_args(k, s, p, {1, 1}, ceil_mode);
    py::gil_scoped_release release;
    return avg_pool2d(x, a, count_include_pad);
  });
  m.def("softmax", [](const Tensor& x, int64_t dim) {
    return maybe_nogil(x.numel(), [&] { return softmax(x, dim); });
  }, py::arg("input"), py::arg("dim"));
  m.def("log_softmax", [](const Tensor& x, int64_t dim) {
    return maybe_nogil(x.numel(), [&] { return log_softmax(x, dim); });
  }, py::arg("input"), py::arg("dim"));
  m.def("cross_entropy", [](const Tensor& x, const Tensor& t, const std::string& red, double smoothing) {
    const Reduction r = parse_reduction(red);
    return maybe_nogil(x.numel(), [&] { return cross_entropy(x, t, r, smoothing); });
  }, py::arg("input"), py::arg("target"), py::arg("reduction"), py::arg("label_smoothing"));
  m.def("nll_loss", [](const Tensor& x, const Tensor& t, const std::string& red) {
    return nll_loss(x, t, parse_reduction(red));
  }, py::arg("input"), py::arg("target"), py::arg("reduction"));
  m.def("multi_margin", [](const Tensor& s, const Tensor& t, int p, double margin, bool mean_over_classes,
                           const std::string& red) {
    return multi_margin(s, t, p, margin, mean_over_classes, parse_reduction(red));
  }, py::arg("input"), py::arg("target"), py::arg("p"), py::arg("margin"), py::arg("mean_over_classes"),
     py::arg("reduction"));
}

}  // namespace dlcore::py_bind
