// CUDA runtime glue: error checks, the current device and stream, copies, device
// queries and the caching allocator.
//
// Note [CUDA caching allocator]
//   cudaMalloc/cudaFree synchronise the device and cost tens of microseconds, so
//   freed blocks are kept in a per-device pool and handed out again. Sizes are
//   rounded up (to 512 bytes below 1 MiB, to 1 MiB above), and a request takes the
//   smallest cached block of at least its rounded size, and of at most twice that
//   size for large blocks. A training loop allocates the same sizes every step,
//   so after the first step it calls cudaMalloc no more (memory_stats().malloc_calls
//   stays flat; a GPU test checks it).
//   All kernels run on one stream per device (the legacy default stream), so a
//   block freed on the host while kernels that use it are still queued can be
//   handed out at once: the next user's kernels run after them (stream order).
//   When cudaMalloc fails, the pool of that device is released (cudaFree) and the
//   allocation retried once; a second failure raises RuntimeError naming the
//   request and the free/total memory, and the process can go on.
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda_backend.h"
#include "dlcore/backend.h"
#include "dlcore/device.h"
#include "dlcore/errors.h"

namespace dlcore {
namespace cuda_impl {

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // reset the runtime's last-error state so the process can go on
  throw RuntimeError(str("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}

cudaStream_t current_stream() { return nullptr; }  // the legacy default stream (what PyTorch uses by default)

namespace {
thread_local int tl_device = -1;
}

int current_device() {
  if (tl_device < 0) DLCORE_CUDA_CHECK(cudaGetDevice(&tl_device));
  return tl_device;
}

int num_sms() {
  static std::mutex mu;
  static std::unordered_map<int, int> cache;
  const int d = current_device();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(d);
  if (it != cache.end()) return it->second;
  int n = 0;
  DLCORE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d));
  cache[d] = n;
  return n;
}

namespace {

int checked_device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw RuntimeError(str("CUDA is not available: ", cudaGetErrorString(e),
                           " (this build has the CUDA backend, but no usable GPU or driver was found)"));
  }
  return n;
}

void activate(int index) {
  if (tl_device == index) return;
  const int n = checked_device_count();
  DLCORE_CHECK(index >= 0 && index < n, RuntimeError, "device cuda:", index, " is not available: ", n,
               " CUDA device(s) found");
  DLCORE_CUDA_CHECK(cudaSetDevice(index));
  tl_device = index;
}

size_t round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t(1) << 20;
  if (n == 0) n = 1;
  if (n < kLarge) return (n + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

struct DevicePool {
  std::multimap<size_t, void*> free_blocks;   // size -> block, cached
  std::unordered_map<void*, size_t> live;     // block -> size, handed out
  cuda::MemoryStats stats;
};

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes, Device d) override {
    activate(d.index);
    const size_t size = round_size(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[d.index];
    auto it = pool.free_blocks.lower_bound(size);
    if (it != pool.free_blocks.end() && (it->first == size || (size >= (size_t(1) << 20) && it->first <= 2 * size))) {
      void* p = it->second;
      const size_t got = it->first;
      pool.free_blocks.erase(it);
      hand_out(pool, p, got);
      return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached(pool);
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess && e != cudaErrorMemoryAllocation) check(e, "cudaMalloc");
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw RuntimeError(str("CUDA out of memory on ", d.str(), ": tried to allocate ", nbytes, " bytes (",
                             nbytes >> 20, " MiB); ", free_b >> 20, " MiB free of ", total_b >> 20,
                             " MiB, ", pool.stats.allocated >> 20, " MiB held by dlcore tensors (",
                             cudaGetErrorString(e), ")"));
    }
    ++pool.stats.malloc_calls;
    pool.stats.reserved += static_cast<int64_t>(size);
    hand_out(pool, p, size);
    return p;
  }

  void deallocate(void* p, size_t, Device d) override {
    std::lock_guard<std::mutex> lock(mu_);
    DevicePool& pool = pools_[d.index];
    auto it = pool.live.find(p);
    if (it == pool.live.end()) return;  // not ours (cannot happen for owned storages)
    pool.stats.allocated -= static_cast<int64_t>(it->second);
    pool.free_blocks.emplace(it->second, p);
    pool.live.erase(it);
  }

  cuda::MemoryStats stats(int index) {
    std::lock_guard<std::mutex> lock(mu_);
    return pools_[index].stats;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    const int here = tl_device;
    for (auto& [index, pool] : pools_) {
      activate(index);
      release_cached(pool);
    }
    if (here >= 0) activate(here);
  }

 private:
  static void hand_out(DevicePool& pool, void* p, size_t size) {
    pool.live[p] = size;
    pool.stats.allocated += static_cast<int64_t>(size);
    if (pool.stats.allocated > pool.stats.peak_allocated) pool.stats.peak_allocated = pool.stats.allocated;
  }
  static void release_cached(DevicePool& pool) {
    cudaDeviceSynchronize();
    for (auto& [size, p] : pool.free_blocks) {
      cudaFree(p);
      pool.stats.reserved -= static_cast<int64_t>(size);
    }
    pool.free_blocks.clear();
  }

  std::mutex mu_;
  std::map<int, DevicePool> pools_;
};

// Never destroyed: tensors held by Python may be freed during interpreter
// shutdown, after static destructors would have run.
CachingAllocator& the_allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

Allocator* allocator() { return &the_allocator(); }
Backend* backend() {
  static CudaBackend* b = new CudaBackend();
  return b;
}

Workspace::Workspace(size_t nbytes) : nbytes_(nbytes), device_(current_device()) {
  if (nbytes > 0) ptr_ = the_allocator().allocate(nbytes, Device{DeviceType::CUDA, device_});
}
Workspace::~Workspace() {
  if (ptr_) the_allocator().deallocate(ptr_, nbytes_, Device{DeviceType::CUDA, device_});
}

void CudaBackend::set_device(int index) { activate(index); }

void CudaBackend::synchronize() { DLCORE_CUDA_CHECK(cudaDeviceSynchronize()); }

void CudaBackend::memcpy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_dev.type == DeviceType::CUDA && src_dev.type == DeviceType::CUDA && dst_dev.index != src_dev.index) {
    // Between two GPUs the copy is ordered with neither device's stream: wait for the
    // source's queued work first and for the copy itself before going on (rare path).
    const int here = current_device();
    activate(src_dev.index);
    DLCORE_CUDA_CHECK(cudaDeviceSynchronize());
    DLCORE_CUDA_CHECK(cudaMemcpyPeer(dst, dst_dev.index, src, src_dev.index, nbytes));
    DLCORE_CUDA_CHECK(cudaDeviceSynchronize());
    activate(here);
    return;
  }
  DLCORE_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, current_stream()));
  // The host may read (or free) its side as soon as we return. To the host: wait. From
  // pageable host memory, cudaMemcpyAsync has already staged the data when it returns,
  // so the copy of a batch to the GPU does not stall the stream; from pinned (page-locked)
  // memory the DMA reads the buffer later: wait.
  bool wait = dst_dev.type == DeviceType::CPU;
  if (!wait && src_dev.type == DeviceType::CPU) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, src) == cudaSuccess) wait = attr.type != cudaMemoryTypeUnregistered;
    else cudaGetLastError(), wait = true;
  }
  if (wait) DLCORE_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

}  // namespace cuda_impl

namespace cuda {

bool is_built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  const int n = device_count();
  DLCORE_CHECK(index >= 0 && index < n, RuntimeError, "device cuda:", index, " is not available: ", n,
               " CUDA device(s) found");
  cudaDeviceProp prop{};
  DLCORE_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

MemoryStats memory_stats(int index) {
  DLCORE_CHECK(index >= 0 && index < device_count(), RuntimeError, "device cuda:", index, " is not available: ",
               device_count(), " CUDA device(s) found");
  return cuda_impl::the_allocator().stats(index);
}

void empty_cache() { cuda_impl::the_allocator().empty_cache(); }

const char* gemm_backend() { return cuda_impl::gemm_impl(); }

void synchronize() {
  if (device_count() == 0) return;
  cuda_impl::current_device();
  DLCORE_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace cuda
}  // namespace dlcore
