#include "filters/ops/builtin_ops.hpp"

namespace pixpool {

const std::vector<const OpDef*>& builtin_ops() {
  static const std::vector<const OpDef*> ops = {&blur_op(), &contour_op()};
  return ops;
}

}  // namespace pixpool
