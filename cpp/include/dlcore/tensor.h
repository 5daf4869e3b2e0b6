#pragma once
// Tensor: metadata (shape, strides, offset, dtype) over a shared Storage.
// `Tensor` is a cheap handle (a shared_ptr to TensorImpl); copying the handle
// aliases the same tensor, as Python references do.
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "dlcore/dtype.h"
#include "dlcore/errors.h"
#include "dlcore/shape.h"
#include "dlcore/storage.h"

namespace dlcore {

struct Node;
class Tensor;

struct TensorImpl {
  StoragePtr storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements, from storage->data()
  DType dtype = DType::Float32;
  // ---- autograd (see autograd.h) ----
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;            // null for leaves
  std::shared_ptr<TensorImpl> grad;         // accumulated gradient of a leaf (or retain_grad)
  std::shared_ptr<TensorImpl> tangent;      // forward-mode tangent, inside jvp()
  std::shared_ptr<struct LeafHooks> hooks;  // gradient hooks of a leaf (autograd.h)
  bool is_view = false;                     // shares storage with the tensor it was made from
  // Storages this tensor exported through the buffer protocol (memoryview has no
  // release hook we can use): kept alive when `.data =` swaps the storage.
  std::vector<StoragePtr> exported;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A fresh, contiguous, uninitialised tensor.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device{});
  // A view over existing storage.
  static Tensor make_view(StoragePtr storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device(); }
  const StoragePtr& storage() const { return impl_->storage; }
  bool is_contiguous() const { return dlcore::is_contiguous(impl_->shape, impl_->strides); }
  bool requires_grad() const { return impl_->requires_grad; }

  void* raw_data() const {
    return static_cast<char*>(impl_->storage->data()) + impl_->offset * itemsize(impl_->dtype);
  }
  template <class T> T* data() const {
    DLCORE_CHECK(dtype_of<T>::value == dtype(), TypeError, "tensor of dtype ", dtype_name(dtype()),
                 " accessed as ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  // autograd accessors
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl_->grad); }
  Tensor tangent() const { return Tensor(impl_->tangent); }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace dlcore
