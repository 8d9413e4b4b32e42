#pragma once
// `pixpool bench`: the load-test tool. See bench_help_text() (bench/options.hpp)
// or `pixpool bench --help` for the command line.

#include <string>
#include <vector>

namespace pixpool {

// Runs the benchmark described by `args` (the arguments after "bench").
// Prints the corpus and the results table to stdout, problems to stderr.
// Returns the process exit status: 0 when every response verified, 1 when
// any request failed or did not verify, 2 on usage errors or when the server
// is unreachable at the start, 130 when interrupted by SIGINT/SIGTERM.
// Installs SIGINT/SIGTERM handlers (and ignores SIGPIPE) while it runs and
// restores the previous ones before returning.
int run_bench(const std::vector<std::string>& args);

}  // namespace pixpool
