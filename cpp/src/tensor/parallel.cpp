#include "dlcore/parallel.h"

#include "dlcore/errors.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore {

void set_num_threads(int n) {
  DLCORE_CHECK(n >= 1, ValueError, "set_num_threads: expected a positive thread count, got ", n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int get_num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

}  // namespace dlcore
