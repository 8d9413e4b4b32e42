#include "filters/test_ops/test_ops.hpp"

namespace pixpool {

Result<void> register_test_ops(OpRegistry& registry) {
  for (const OpDef* def : {&sleep_op(), &crash_op(), &hog_op()}) {
    if (auto ok = registry.add(*def); !ok) return ok;
  }
  return {};
}

}  // namespace pixpool
