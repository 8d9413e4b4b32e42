#pragma once
// How busy the machine was during a run: the client's own CPU time, the
// load average and the system's CPU busy share, so the report can warn when
// its figures may be skewed (on one machine, the client competes with the
// server for the same cores).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pixpool::bench {

// Jiffies from the first ("cpu ") line of /proc/stat: busy excludes idle and
// iowait.
struct CpuTimes {
  std::uint64_t busy = 0;
  std::uint64_t total = 0;
};
std::optional<CpuTimes> parse_proc_stat(std::string_view text);
// The 1-minute load average from /proc/loadavg text.
std::optional<double> parse_loadavg(std::string_view text);

// The live values; nullopt where /proc is unavailable.
std::optional<CpuTimes> read_cpu_times();
std::optional<double> read_load1();
int online_cores();  // at least 1

// Share of the CPU busy between two samples, 0..1; nullopt when unknown.
std::optional<double> busy_share(const std::optional<CpuTimes>& before,
                                 const std::optional<CpuTimes>& after);

// One step's figures.
struct StepMachine {
  std::string step;         // "tbb c=4" (+ " #2" for a repeat)
  double client_cores = 0;  // client CPU seconds per wall second (1.0 = one core)
  double system_busy = -1;  // whole machine's CPU busy share 0..1, -1 unknown
  double load1 = -1;        // 1-minute load average at the step's end, -1 unknown
};

struct MachineLoad {
  int cores = 1;
  double load1_before = -1;  // before the first step, -1 unknown
  std::vector<StepMachine> steps;
};

// The client used more than this share of all cores in some step.
inline constexpr double kClientShareLimit = 0.25;

// Warnings, in words, when the figures may be skewed: the client used more
// than kClientShareLimit of the machine's cores (on 2 cores, half a core), or
// the load average exceeded the core count before or during the run. Empty
// when neither happened.
std::vector<std::string> busy_warnings(const MachineLoad& load);

}  // namespace pixpool::bench
