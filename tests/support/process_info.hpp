#pragma once
// Linux /proc helpers for fault tests.

#include <sys/types.h>

#include <vector>

namespace pixpool::test {

// Direct children of `pid` (zombies included: they are still children).
std::vector<pid_t> children_of(pid_t pid);

// True while `pid` exists and is not a zombie.
bool process_alive(pid_t pid);

// Number of open file descriptors of this process.
int open_fd_count();

}  // namespace pixpool::test
