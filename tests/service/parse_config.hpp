#pragma once
// parse_command_line with a map as the environment, for the config tests.

#include <map>
#include <string>
#include <vector>

#include "service/config.hpp"

namespace pixpool::test {

// `args` as if on the command line (without the program name), `env` as the
// only environment variables.
inline Result<CommandLine> parse(const std::vector<std::string>& args,
                                 std::map<std::string, std::string> env = {}) {
  return parse_command_line(args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace pixpool::test
