#include "tests/support/process_info.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace pixpool::test {

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(task.path() / "children");
    pid_t child = 0;
    while (in >> child) out.push_back(child);
  }
  return out;
}

bool process_alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

int open_fd_count() {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       it != std::filesystem::directory_iterator(); ++it) {
    ++n;
  }
  return n;
}

}  // namespace pixpool::test

namespace pixpool::test {

long long peak_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      long long kib = 0;
      in >> kib;
      return kib * 1024;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace pixpool::test

namespace pixpool::test {
namespace {

// The value in kiB of `field` ("VmRSS:", "Pss:") in /proc/<pid>/<file>.
long long proc_kib(pid_t pid, const char* file, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string key;
  while (in >> key) {
    if (key == field) {
      long long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

long long tree_rss_bytes(pid_t pid) {
  long long total = proc_kib(pid, "status", "VmRSS:") * 1024;
  for (pid_t child : children_of(pid)) total += tree_rss_bytes(child);
  return total;
}

long long tree_pss_bytes(pid_t pid) {
  long long total = proc_kib(pid, "smaps_rollup", "Pss:") * 1024;
  for (pid_t child : children_of(pid)) total += tree_pss_bytes(child);
  return total;
}

}  // namespace pixpool::test

namespace pixpool::test {

std::map<int, std::string> fd_targets(pid_t pid) {
  std::map<int, std::string> out;
  std::error_code ec;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code link_error;
    const auto target = std::filesystem::read_symlink(entry.path(), link_error);
    if (link_error) continue;  // closed meanwhile
    out[std::stoi(entry.path().filename().string())] = target.string();
  }
  return out;
}

std::map<int, std::string> fd_targets_except_tcp(pid_t pid) {
  // Column 10 of /proc/<pid>/net/tcp{,6} is the socket's inode.
  std::set<std::string> tcp;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string field;
      for (int column = 1; column <= 10 && fields >> field; ++column) {
        if (column == 10) tcp.insert("socket:[" + field + "]");
      }
    }
  }
  auto out = fd_targets(pid);
  std::erase_if(out, [&](const auto& entry) { return tcp.count(entry.second) > 0; });
  return out;
}

int memfd_mappings(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  int n = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("/memfd:") != std::string::npos) ++n;
  }
  return n;
}

std::vector<pid_t> zombies_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t parent = 0;
    rest >> state >> parent;
    if (state == 'Z' && parent == pid) out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return -1;
  std::istringstream rest(line.substr(close + 2));
  char state = 0;
  pid_t parent = -1;
  rest >> state >> parent;
  return rest ? parent : -1;
}

std::string command_name(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace pixpool::test

namespace pixpool::test {

std::string wait_channel(pid_t pid) {
  // The main thread only: under TSan every process also has the runtime's
  // background thread, which sleeps in nanosleep, so an idle worker would
  // look like one sleeping in a job (seen in CI's tsan suite).
  std::ifstream in("/proc/" + std::to_string(pid) + "/wchan");
  std::string where;
  std::getline(in, where);
  return where;
}

}  // namespace pixpool::test
