#pragma once
// Typed errors of the core. The bindings map them to Python exceptions:
//   ValueError -> ValueError, IndexError -> IndexError, TypeError -> TypeError,
//   anything else derived from std::exception -> RuntimeError.
// Messages always name the offending shapes or values (DESIGN.md rule 5).
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace dlcore {

struct ValueError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct IndexError : std::out_of_range { using std::out_of_range::out_of_range; };
struct TypeError : std::invalid_argument { using std::invalid_argument::invalid_argument; };
struct RuntimeError : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... Rest>
void stream_all(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  stream_all(os, rest...);
}
}  // namespace detail

template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::stream_all(os, args...);
  return os.str();
}

// "(2, 3)" for a shape, "()" for a scalar.
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace dlcore

// DLCORE_CHECK(cond, ErrorType, message parts...): throw ErrorType with the parts concatenated.
#define DLCORE_CHECK(cond, Err, ...)                       \
  do {                                                     \
    if (!(cond)) throw ::dlcore::Err(::dlcore::str(__VA_ARGS__)); \
  } while (0)
