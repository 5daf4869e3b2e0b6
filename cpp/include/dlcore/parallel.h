#pragma once
// Threading: OpenMP when the build has it, serial otherwise.
//
// Note [Parallel threshold]
//   Starting an OpenMP team costs a few microseconds, so a kernel runs in
//   parallel only when its work exceeds a threshold (in elements, scaled by the
//   cost of the element operation). Below it the loop is serial, which is what
//   keeps small-tensor ops cheap.
#include <cstdint>

namespace dlcore {

constexpr int64_t kParallelGrain = 32768;  // elements of a cheap op per parallel region

void set_num_threads(int n);  // ValueError for n < 1
int get_num_threads();
bool in_parallel_region();

}  // namespace dlcore
