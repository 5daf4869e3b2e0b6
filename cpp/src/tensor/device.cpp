#include "dlcore/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "dlcore/errors.h"

namespace dlcore {

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device{DeviceType::CPU, 0};
  if (s == "cuda") return Device{DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    const std::string num = s.substr(5);
    if (num.find_first_not_of("0123456789") == std::string::npos && num.size() < 6)
      return Device{DeviceType::CUDA, std::stoi(num)};
  }
  throw ValueError(str("unknown device '", s, "': expected 'cpu', 'cuda' or 'cuda:N'"));
}

namespace {

// 64-byte aligned host memory: a full cache line and an AVX-512 vector.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device) override {
    const size_t rounded = ((nbytes + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void deallocate(void* p, size_t, Device) override { std::free(p); }
};

CpuAllocator g_cpu_allocator;
std::atomic<Allocator*> g_allocators[2] = {&g_cpu_allocator, nullptr};  // see backend_for

}  // namespace

#ifdef DLCORE_WITH_CUDA
namespace cuda_impl {
Allocator* allocator();  // runtime.cu
}
#endif

void register_allocator(DeviceType t, Allocator* a) { g_allocators[static_cast<int>(t)].store(a); }

Allocator& allocator_for(Device d) {
  Allocator* a = g_allocators[static_cast<int>(d.type)].load(std::memory_order_acquire);
#ifdef DLCORE_WITH_CUDA
  if (!a && d.type == DeviceType::CUDA) {
    a = cuda_impl::allocator();  // a function-local static: thread-safe construction
    g_allocators[1].store(a, std::memory_order_release);
  }
#endif
  if (!a) throw RuntimeError(str("device ", d.str(), " is not available: this build of dlcore has no ",
                                 d.type == DeviceType::CUDA ? "CUDA" : "such",
                                 " backend (rebuild with DLCORE_CUDA=ON, see the README)"));
  return *a;
}

}  // namespace dlcore
