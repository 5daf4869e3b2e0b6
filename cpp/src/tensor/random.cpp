#include "dlcore/random.h"

#include <cmath>

namespace dlcore {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::seed_with(uint64_t seed) {
  seed_ = seed;
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
  has_cached_ = false;
}

// xoshiro256** (Blackman & Vigna), written from the published algorithm.
uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::next_normal() {
  if (has_cached_) {
    has_cached_ = false;
    return cached_;
  }
  double u1 = next_double();
  while (u1 <= 0.0) u1 = next_double();
  const double u2 = next_double();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double th = 2.0 * M_PI * u2;
  cached_ = r * std::sin(th);
  has_cached_ = true;
  return r * std::cos(th);
}

uint64_t Generator::next_below(uint64_t n) {
  // rejection sampling: reject the top partial range to avoid modulo bias
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return v % n;
}

std::array<uint64_t, 6> Generator::get_state() const {
  uint64_t cached_bits;
  static_assert(sizeof(double) == sizeof(uint64_t));
  __builtin_memcpy(&cached_bits, &cached_, 8);
  return {s_[0], s_[1], s_[2], s_[3], has_cached_ ? 1ULL : 0ULL, cached_bits};
}

void Generator::set_state(const std::array<uint64_t, 6>& st) {
  for (int i = 0; i < 4; ++i) s_[i] = st[i];
  has_cached_ = st[4] != 0;
  __builtin_memcpy(&cached_, &st[5], 8);
}

Generator& default_generator() {
  static Generator g;
  return g;
}

}  // namespace dlcore
