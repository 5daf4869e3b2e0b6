// The backend registry (Note [Device dispatch]) and, in a CPU-only build, the
// CUDA queries that report "no CUDA".
#include "dlcore/backend.h"

#include "dlcore/errors.h"

#include <atomic>

namespace dlcore {

Backend* cpu_backend();  // kernels/cpu/cpu_backend.cpp
#ifdef DLCORE_WITH_CUDA
namespace cuda_impl {
Backend* backend();  // kernels/cuda/runtime.cu
}
#endif

namespace {
// Set once (lazily, or by register_backend); atomics because backend_for runs with the
// GIL released, from any thread.
std::atomic<Backend*> g_backends[2] = {nullptr, nullptr};
}  // namespace

void register_backend(DeviceType t, Backend* b) { g_backends[static_cast<int>(t)].store(b); }

bool has_backend(DeviceType t) {
#ifdef DLCORE_WITH_CUDA
  if (t == DeviceType::CUDA) return true;
#endif
  return t == DeviceType::CPU || (t == DeviceType::CUDA && g_backends[1].load() != nullptr);
}

Backend& backend_for(Device d) {
  Backend* b = g_backends[static_cast<int>(d.type)].load(std::memory_order_acquire);
  if (!b) {
    if (d.type == DeviceType::CPU) {
      b = cpu_backend();  // a function-local static: thread-safe construction
    } else {
#ifdef DLCORE_WITH_CUDA
      b = cuda_impl::backend();
#else
      throw RuntimeError(str("device ", d.str(),
                             " is not available: this build of dlcore has no CUDA backend (rebuild with "
                             "DLCORE_CUDA=ON, see the README)"));
#endif
    }
    g_backends[static_cast<int>(d.type)].store(b, std::memory_order_release);
  }
  b->set_device(d.index);
  return *b;
}

#ifndef DLCORE_WITH_CUDA
namespace cuda {
bool is_built() { return false; }
int device_count() { return 0; }
std::string device_name(int index) {
  throw RuntimeError(str("device cuda:", index, " is not available: this build of dlcore has no CUDA backend"));
}
MemoryStats memory_stats(int index) {
  throw RuntimeError(str("device cuda:", index, " is not available: this build of dlcore has no CUDA backend"));
}
void empty_cache() {}
const char* gemm_backend() { return "none"; }
void synchronize() {}
}  // namespace cuda
#endif

}  // namespace dlcore
