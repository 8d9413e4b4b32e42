// pipeline_tests' runner: registers the test ops, then starts the worker
// zygote exactly as the server's main() does under --enable-test-ops. The
// zygote is this binary again (zygote mode), so run_zygote_if_requested
// comes first.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <oneapi/tbb/global_control.h>

#include <cstdio>

#include "filters/test_ops/test_ops.hpp"
#include "pipeline/tbb_backend.hpp"
#include "tests/support/test_zygote.hpp"

namespace {
std::shared_ptr<pixpool::Zygote> g_zygote;

pixpool::Result<void> prepare_zygote(const pixpool::ZygoteEnvironment& environment) {
  if (!environment.test_ops) return {};
  return pixpool::register_test_ops(pixpool::default_registry());
}
}  // namespace

std::shared_ptr<pixpool::Zygote> pixpool::test::zygote() {
  return g_zygote;
}

std::shared_ptr<pixpool::Zygote> pixpool::test::start_zygote(pixpool::ZygoteOptions options) {
  options.environment.test_ops = true;
  auto started = pixpool::Zygote::start(options);
  REQUIRE(started.ok());
  return *started;
}

int main(int argc, char** argv) {
  pixpool::run_zygote_if_requested(argc, argv, prepare_zygote);
  // The fault tests need sleep/crash/hog, in this process and (through the
  // zygote's environment) in the workers, as under the server's --enable-test-ops.
  if (auto ok = pixpool::register_test_ops(pixpool::default_registry()); !ok) return 1;
  pixpool::ZygoteOptions options;
  options.environment.test_ops = true;
  auto zygote = pixpool::Zygote::start(options);
  if (!zygote) {
    std::fprintf(stderr, "cannot start the zygote: %s\n", zygote.error().message.c_str());
    return 1;
  }
  g_zygote = *zygote;
  // As main() does: TBB's thread limit, once, for the test backends' arenas.
  const tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism,
                                        pixpool::tbb_parallelism_for({.threads = 2}));
  doctest::Context context(argc, argv);
  const int status = context.run();
  g_zygote.reset();
  return status;
}
