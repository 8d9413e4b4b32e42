#pragma once
// The built-in ops, one file each in this folder. To add an op: write
// filters/ops/<name>_op.cpp declaring its OpDef, declare its accessor here,
// list it in builtin_ops.cpp and add the file to filters/CMakeLists.txt.

#include <vector>

#include "filters/op_registry.hpp"

namespace pixpool {

const OpDef& blur_op();     // filters/ops/blur_op.cpp
const OpDef& contour_op();  // filters/ops/contour_op.cpp

// Every built-in op, in the order --help and the README list them.
const std::vector<const OpDef*>& builtin_ops();

}  // namespace pixpool
