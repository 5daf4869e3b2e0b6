#pragma once
// Storage: a reference-counted block of memory on one device. Tensors are views
// (shape, strides, offset) over a shared Storage.
//
// Note [Version counter]
//   Every in-place write to a storage bumps `version`. Autograd saves the version
//   of each tensor it saves for backward and checks it again at backward time, so
//   a tensor modified after it was saved gives a clear error instead of a wrong
//   gradient (the idea comes from PyTorch's VariableVersion).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "dlcore/device.h"

namespace dlcore {

class Storage {
 public:
  // Owned memory from the device's allocator.
  Storage(size_t nbytes, Device device);
  // Borrowed memory (numpy, DLPack): `release` runs when the last view dies.
  Storage(void* data, size_t nbytes, Device device, std::function<void()> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_; }
  // An in-place write also forgets the noted value range (below).
  void bump_version() {
    ++version_;
    int_range_.reset();
  }
  // Known [lo, hi] of the int64 values in this storage, noted when they were copied
  // from the host (to_device); label and index checks use it instead of copying the
  // values back from a device. Forgotten on any write and on export (DLPack), after
  // which another framework could write the memory without our knowledge.
  const std::optional<std::pair<int64_t, int64_t>>& int_range() const { return int_range_; }
  void set_int_range(int64_t lo, int64_t hi) { int_range_ = std::make_pair(lo, hi); }
  void forget_int_range() { int_range_.reset(); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::function<void()> release_;  // empty for owned memory
  uint64_t version_ = 0;
  std::optional<std::pair<int64_t, int64_t>> int_range_;
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace dlcore
