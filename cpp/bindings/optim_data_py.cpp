// Fused optimiser steps (dlcore._core.optim) and batched augmentation (dlcore._core.data).
#include "common.h"
#include "dlcore/kernels/image.h"
#include "dlcore/kernels/knn.h"
#include "dlcore/backend.h"

namespace dlcore::py_bind {

namespace {
void check_state(const char* op, const Tensor& p, const Tensor& t, const char* what) {
  DLCORE_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype() && t.is_contiguous(), ValueError, op, ": ", what,
               " of shape ", shape_str(t.shape()), " (", dtype_name(t.dtype()),
               ") must be a contiguous tensor like the parameter ", shape_str(p.shape()), " (", dtype_name(p.dtype()),
               ")");
}
void check_device(const char* op, const Tensor& p, const Tensor& t, const char* what) {
  DLCORE_CHECK(t.device() == p.device(), ValueError, op, ": the parameter is on ", p.device().str(), " but its ",
               what, " is on ", t.device().str());
}

void check_cpu(const char* op, const Tensor& t) {
  DLCORE_CHECK(t.device().type == DeviceType::CPU, ValueError, op, ": runs on the host; got a tensor on ",
               t.device().str(), " (move it with .cpu())");
}
}  // namespace

void bind_optim(py::module_& root) {
  py::module_ m = root.def_submodule("optim", "fused optimiser kernels");
  m.def("sgd_step", [](const Tensor& p, const Tensor& g, std::optional<Tensor> buf, double lr, double momentum,
                       double dampening, bool nesterov, double weight_decay, bool first) {
    DLCORE_CHECK(is_floating(p.dtype()) && p.is_contiguous(), ValueError,
                 "sgd_step: the parameter must be a contiguous float tensor, got shape ", shape_str(p.shape()));
    check_device("sgd_step", p, g, "grad");
    const Tensor gc = contiguous(to_dtype(g, p.dtype()));
    check_state("sgd_step", p, gc, "grad");
    if (buf) check_state("sgd_step", p, *buf, "momentum buffer");
    DLCORE_CHECK(momentum == 0.0 || buf, ValueError, "sgd_step: momentum needs a buffer");
    if (buf) check_device("sgd_step", p, *buf, "momentum buffer");
    py::gil_scoped_release release;
    backend_for(p.device()).sgd_step(p.dtype(), p.raw_data(), gc.raw_data(), buf ? buf->raw_data() : nullptr,
                                     p.numel(), lr, momentum, dampening, nesterov, weight_decay, first);
    p.storage()->bump_version();
    if (buf) buf->storage()->bump_version();
  }, py::arg("param"), py::arg("grad"), py::arg("buf").none(true), py::arg("lr"), py::arg("momentum"),
     py::arg("dampening"), py::arg("nesterov"), py::arg("weight_decay"), py::arg("first"));
  m.def("adam_step", [](const Tensor& p, const Tensor& g, const Tensor& exp_avg, const Tensor& exp_avg_sq, int64_t t,
                        double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled) {
    DLCORE_CHECK(is_floating(p.dtype()) && p.is_contiguous(), ValueError,
                 "adam_step: the parameter must be a contiguous float tensor, got shape ", shape_str(p.shape()));
    DLCORE_CHECK(t >= 1, ValueError, "adam_step: step must be >= 1, got ", t);
    check_device("adam_step", p, g, "grad");
    check_device("adam_step", p, exp_avg, "exp_avg");
    check_device("adam_step", p, exp_avg_sq, "exp_avg_sq");
    const Tensor gc = contiguous(to_dtype(g, p.dtype()));
    check_state("adam_step", p, gc, "grad");
    check_state("adam_step", p, exp_avg, "exp_avg");
    check_state("adam_step", p, exp_avg_sq, "exp_avg_sq");
    py::gil_scoped_release release;
    backend_for(p.device()).adam_step(p.dtype(), p.raw_data(), gc.raw_data(), exp_avg.raw_data(),
                                      exp_avg_sq.raw_data(), p.numel(), t, lr, beta1, beta2, eps, weight_decay,
                                      decoupled);
    p.storage()->bump_version();
    exp_avg.storage()->bump_version();
    exp_avg_sq.storage()->bump_version();
  }, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("step"), py::arg("lr"),
     py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"));
}

void bind_data(py::module_& root) {
  py::module_ m = root.def_submodule("data", "batched data-augmentation kernels");
  m.def("crop_flip", [](const Tensor& x, const Tensor& top, const Tensor& left, const Tensor& flip, int64_t oh,
                        int64_t ow) {
    DLCORE_CHECK(x.dim() == 4, ValueError, "crop_flip: expected (N, C, H, W) images, got shape ", shape_str(x.shape()));
    const int64_t N = x.shape()[0];
    DLCORE_CHECK(top.dtype() == DType::Int64 && left.dtype() == DType::Int64 && flip.dtype() == DType::Bool &&
                     top.numel() == N && left.numel() == N && flip.numel() == N,
                 ValueError, "crop_flip: top/left (int64) and flip (bool) need one entry per image (", N, ")");
    DLCORE_CHECK(oh > 0 && ow > 0, ValueError, "crop_flip: output size must be positive, got ", oh, "x", ow);
    for (const Tensor* t : {&x, &top, &left, &flip}) check_cpu("crop_flip", *t);
    const Tensor xc = contiguous(x), tc = contiguous(top), lc = contiguous(left), fc = contiguous(flip);
    Tensor y = Tensor::empty({N, x.shape()[1], oh, ow}, x.dtype());
    py::gil_scoped_release release;
    DLCORE_DISPATCH_FLOAT(x.dtype(), "crop_flip", [&] {
      kernels::crop_flip<scalar_t>(xc.data<scalar_t>(), y.data<scalar_t>(), N, x.shape()[1], x.shape()[2],
                                   x.shape()[3], oh, ow, tc.data<int64_t>(), lc.data<int64_t>(), fc.data<bool>());
    });
    return y;
  }, py::arg("images"), py::arg("top"), py::arg("left"), py::arg("flip"), py::arg("height"), py::arg("width"));

  m.def("knn_search", [](const Tensor& q, const Tensor& ref, int64_t k, int metric) {
    DLCORE_CHECK(q.dim() == 2 && ref.dim() == 2 && q.shape()[1] == ref.shape()[1], ValueError,
                 "knn_search: queries ", shape_str(q.shape()), " and references ", shape_str(ref.shape()),
                 " must be 2-D with the same number of features");
    DLCORE_CHECK(k >= 1 && k <= ref.shape()[0], ValueError, "knn_search: k=", k, " must be in [1, ", ref.shape()[0],
                 "] (the number of training examples)");
    DLCORE_CHECK(metric == 1 || metric == 2, ValueError, "knn_search: metric must be 1 (L1) or 2 (L2)");
    check_cpu("knn_search", q);
    check_cpu("knn_search", ref);
    const Tensor qc = contiguous(to_dtype(q, DType::Float64)), rc = contiguous(to_dtype(ref, DType::Float64));
    const int64_t M = q.shape()[0];
    Tensor idx = Tensor::empty({M, k}, DType::Int64), dist = Tensor::empty({M, k}, DType::Float64);
    py::gil_scoped_release release;
    kernels::knn_search(qc.data<double>(), rc.data<double>(), M, ref.shape()[0], q.shape()[1], k, metric,
                        idx.data<int64_t>(), dist.data<double>());
    return std::make_pair(idx, dist);
  }, py::arg("queries"), py::arg("references"), py::arg("k"), py::arg("metric"));
}

}  // namespace dlcore::py_bind
