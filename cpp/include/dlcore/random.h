#pragma once
// The seedable generator behind rand/randn/randint/shuffles. xoshiro256** seeded
// through splitmix64; draws are serial so results do not depend on thread count.
#include <array>
#include <cstdint>

namespace dlcore {

class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ULL) { seed_with(seed); }
  void seed_with(uint64_t seed);
  uint64_t seed() const { return seed_; }
  uint64_t next_u64();
  double next_double();  // uniform in [0, 1)
  double next_normal();  // standard normal (Box-Muller, caches the second value)
  // uniform integer in [0, n), n > 0, without modulo bias
  uint64_t next_below(uint64_t n);
  std::array<uint64_t, 6> get_state() const;
  void set_state(const std::array<uint64_t, 6>& st);

 private:
  uint64_t seed_ = 0;
  uint64_t s_[4] = {0, 0, 0, 0};
  bool has_cached_ = false;
  double cached_ = 0.0;
};

Generator& default_generator();

}  // namespace dlcore
