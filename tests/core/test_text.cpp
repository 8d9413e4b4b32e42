// The shared text helpers: numbers written the way users write them, and the
// distance behind "did you mean".
#include <doctest/doctest.h>

#include <cstdlib>

#include "core/text.hpp"

using namespace pixpool;

TEST_CASE("shortest_decimal reads back to the same double") {
  CHECK(shortest_decimal(5) == "5");
  CHECK(shortest_decimal(2.5) == "2.5");
  CHECK(shortest_decimal(0.1) == "0.1");
  for (double v : {0.30000000000000004, 99.99999999999999, 1e-7, 123456789.125}) {
    CHECK(std::strtod(shortest_decimal(v).c_str(), nullptr) == v);
  }
}

TEST_CASE("edit_distance counts edits and ignores case") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("workers", "workers") == 0);
  CHECK(edit_distance("worker", "workers") == 1);
  CHECK(edit_distance("--concurency", "--concurrency") == 1);
  CHECK(edit_distance("PIXPOOL_WORKER", "pixpool_workers") == 1);
  CHECK(edit_distance("abc", "xyz") == 3);
}
