#pragma once
// The zygote shared by a test binary, started in main() before any test
// runs. Only suites whose main starts it (and calls run_zygote_if_requested
// first) may call these.

#include <memory>

#include "pipeline/zygote.hpp"

namespace pixpool::test {

std::shared_ptr<Zygote> zygote();

// A zygote of its own (test ops registered), e.g. to kill it or to inject
// failed replacements (options.fail_replacements).
std::shared_ptr<Zygote> start_zygote(ZygoteOptions options = {});

}  // namespace pixpool::test
