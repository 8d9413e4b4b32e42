// pipeline_tests' runner: forks the worker zygote first, while the process
// still has a single thread, exactly as the server's main() does.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "tests/support/test_zygote.hpp"

namespace {
std::shared_ptr<pixpool::Zygote> g_zygote;
}

std::shared_ptr<pixpool::Zygote> pixpool::test::zygote() {
  return g_zygote;
}

int main(int argc, char** argv) {
  auto zygote = pixpool::Zygote::start();
  if (!zygote) {
    std::fprintf(stderr, "cannot start the zygote: %s\n", zygote.error().message.c_str());
    return 1;
  }
  g_zygote = *zygote;
  doctest::Context context(argc, argv);
  const int status = context.run();
  g_zygote.reset();
  return status;
}
