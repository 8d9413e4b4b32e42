#pragma once
// Test-only ops for fault and timeout tests, in their own library
// (pixpool::test_ops). They exist in a registry only after
// register_test_ops(), which the server calls under --enable-test-ops and
// nowhere else: without that flag no request can reach them. Never enable it
// in production.
//   sleep:MS  waits MS milliseconds (0..60000), like a slow decode
//   crash     raises SIGSEGV, like a decoder bug
//   hog:MB    allocates and touches MB MiB (1..65536), like an image bomb

#include "core/result.hpp"
#include "filters/op_registry.hpp"

namespace pixpool {

const OpDef& sleep_op();  // filters/test_ops/sleep_op.cpp
const OpDef& crash_op();  // filters/test_ops/crash_op.cpp
const OpDef& hog_op();    // filters/test_ops/hog_op.cpp

// Adds sleep, crash and hog to `registry`. Errors: those of
// OpRegistry::add (e.g. called twice on one registry).
Result<void> register_test_ops(OpRegistry& registry);

}  // namespace pixpool
