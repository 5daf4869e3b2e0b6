// The backend registry (Note [Device dispatch]) and, in a CPU-only build, the
// CUDA queries that report "no CUDA".
#include "dlcore/backend.h"

#include "dlcore/errors.h"

namespace dlcore {

Backend* cpu_backend();  // kernels/cpu/cpu_backend.cpp
#ifdef DLCORE_WITH_CUDA
namespace cuda_impl {
Backend* backend();  // kernels/cuda/runtime.cu
}
#endif

namespace {
Backend* g_backends[2] = {nullptr, nullptr};
}

void register_backend(DeviceType t, Backend* b) { g_backends[static_cast<int>(t)] = b; }

bool has_backend(DeviceType t) {
#ifdef DLCORE_WITH_CUDA
  if (t == DeviceType::CUDA) return true;
#endif
  return t == DeviceType::CPU || g_backends[static_cast<int>(t)] != nullptr;
}

Backend& backend_for(Device d) {
  Backend* b = g_backends[static_cast<int>(d.type)];
  if (!b) {
    if (d.type == DeviceType::CPU) {
      b = g_backends[0] = cpu_backend();
    } else {
#ifdef DLCORE_WITH_CUDA
      b = g_backends[1] = cuda_impl::backend();
#else
      throw RuntimeError(str("device ", d.str(),
                             " is not available: this build of dlcore has no CUDA backend (rebuild with "
                             "DLCORE_CUDA=ON, see the README)"));
#endif
    }
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
