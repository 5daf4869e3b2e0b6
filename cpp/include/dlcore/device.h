#pragma once
// Devices and allocators. Op code never allocates raw memory itself: it asks the
// allocator registered for the tensor's device (DESIGN.md rule 3), so a CUDA
// backend joins by registering one more Allocator.
#include <cstddef>
#include <cstdint>
#include <string>

namespace dlcore {

enum class DeviceType : int8_t { CPU = 0, CUDA = 1 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu", "cuda:0"
};

// Parse "cpu", "cuda", "cuda:1"; throws ValueError on anything else.
Device parse_device(const std::string& s);

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Memory on device `d` (whose type is this allocator's). Throws RuntimeError (or
  // std::bad_alloc) on failure, never returns null.
  virtual void* allocate(size_t nbytes, Device d) = 0;
  virtual void deallocate(void* p, size_t nbytes, Device d) = 0;
};

// The allocator of a device; throws RuntimeError naming the device when it has none
// (e.g. CUDA in a CPU-only build).
Allocator& allocator_for(Device d);
void register_allocator(DeviceType t, Allocator* a);

}  // namespace dlcore
