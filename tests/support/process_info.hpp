#pragma once
// Linux /proc helpers for fault tests.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace pixpool::test {

// Direct children of `pid` (zombies included: they are still children).
std::vector<pid_t> children_of(pid_t pid);

// True while `pid` exists and is not a zombie.
bool process_alive(pid_t pid);

// Number of open file descriptors of this process.
int open_fd_count();

}  // namespace pixpool::test

namespace pixpool::test {

// Peak resident set size (VmHWM) of `pid` in bytes; 0 when unreadable.
long long peak_rss_bytes(pid_t pid);

}  // namespace pixpool::test

namespace pixpool::test {

// Resident set size now (VmRSS) of `pid` plus all its descendants, in bytes.
// Pages the processes share (libraries, the zygote's copy-on-write heap, the
// shared buffers between server and workers) count once per process.
long long tree_rss_bytes(pid_t pid);

// The same as proportional set size (Pss in /proc/<pid>/smaps_rollup): a
// page shared by n processes counts 1/n in each, so the sum is the memory
// the tree really holds.
long long tree_pss_bytes(pid_t pid);

}  // namespace pixpool::test

namespace pixpool::test {

// What each open descriptor of `pid` points to (readlink of /proc/<pid>/fd/N),
// keyed by number: "socket:[123]", "/memfd:pixpool-shm (deleted)", ...
std::map<int, std::string> fd_targets(pid_t pid);

// fd_targets() without TCP sockets (listening or connected, found through
// /proc/<pid>/net/tcp and tcp6): what is left must not move with clients,
// so leak checks can compare it exactly while connections come and go.
std::map<int, std::string> fd_targets_except_tcp(pid_t pid);

// Lines of /proc/<pid>/maps that map a memfd ("/memfd:" in the path).
int memfd_mappings(pid_t pid);

// Processes whose parent is `pid` and whose state is Z (a scan of /proc/*/stat).
std::vector<pid_t> zombies_of(pid_t pid);

// The parent of `pid` (field 4 of /proc/<pid>/stat), -1 when it is gone.
pid_t parent_of(pid_t pid);

// The command name of `pid` (/proc/<pid>/comm, without the newline).
std::string command_name(pid_t pid);

}  // namespace pixpool::test

namespace pixpool::test {

// Where the main thread of `pid` sleeps in the kernel (/proc/<pid>/wchan),
// e.g. "hrtimer_nanosleep" while a worker runs the test op sleep (ops run on
// the worker's main thread).
std::string wait_channel(pid_t pid);

}  // namespace pixpool::test
