#include "dlcore/dtype.h"

#include "dlcore/errors.h"

namespace dlcore {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::Int64: return "int64";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "unknown";
}

// Note [Type promotion] in dtype.h.
DType promote_with_scalar(DType t, ScalarKind k) {
  switch (k) {
    case ScalarKind::Bool: return t;
    case ScalarKind::Int: return t == DType::Bool ? DType::Int64 : t;
    case ScalarKind::Float: return is_floating(t) ? t : DType::Float32;
  }
  return t;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

}  // namespace dlcore
