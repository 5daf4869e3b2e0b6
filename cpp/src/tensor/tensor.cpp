#include "dlcore/tensor.h"

namespace dlcore {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  const int64_t n = numel_checked(shape);
  int64_t nbytes = 0;
  DLCORE_CHECK(!__builtin_mul_overflow(n, itemsize(dtype), &nbytes), ValueError, "shape ", shape_str(shape),
               " of dtype ", dtype_name(dtype), " needs more bytes than int64 can count");
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = std::make_shared<Storage>(static_cast<size_t>(nbytes), device);
  } catch (const std::bad_alloc&) {
    throw RuntimeError(str("out of memory allocating ", nbytes, " bytes for a tensor of shape ", shape_str(shape),
                           " (", dtype_name(dtype), ")"));
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::make_view(StoragePtr storage, Shape shape, Shape strides, int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const {
  DLCORE_CHECK(dim() > 0, IndexError, "size(", d, "): a 0-d tensor has no dims");
  return impl_->shape[normalize_dim(d, dim())];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : impl_->shape) n *= d;
  return n;
}

}  // namespace dlcore
