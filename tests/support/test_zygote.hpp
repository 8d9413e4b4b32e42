#pragma once
// The zygote shared by a test binary, forked in main() before any test (and
// thus any TBB or OpenCV thread) runs. Only suites whose main starts it may
// call this.

#include <memory>

#include "pipeline/zygote.hpp"

namespace pixpool::test {

std::shared_ptr<Zygote> zygote();

}  // namespace pixpool::test
