#include "bench/machine.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace pixpool::bench {
namespace {

std::optional<std::string> read_text(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string fixed(double value, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace

std::optional<CpuTimes> parse_proc_stat(std::string_view text) {
  if (!text.starts_with("cpu ")) return std::nullopt;
  std::istringstream line(std::string(text.substr(0, text.find('\n'))).substr(4));
  // user nice system idle iowait irq softirq steal (guest is already in user)
  std::uint64_t fields[8] = {};
  int count = 0;
  for (; count < 8 && line >> fields[count]; ++count) {
  }
  if (count < 4) return std::nullopt;
  CpuTimes out;
  for (int i = 0; i < count; ++i) out.total += fields[i];
  out.busy = out.total - fields[3] - (count > 4 ? fields[4] : 0);
  return out;
}

std::optional<double> parse_loadavg(std::string_view text) {
  std::istringstream in{std::string(text)};
  double load = 0;
  if (!(in >> load) || load < 0) return std::nullopt;
  return load;
}

std::optional<CpuTimes> read_cpu_times() {
  const auto text = read_text("/proc/stat");
  return text ? parse_proc_stat(*text) : std::nullopt;
}

std::optional<double> read_load1() {
  const auto text = read_text("/proc/loadavg");
  return text ? parse_loadavg(*text) : std::nullopt;
}

int online_cores() {
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::optional<double> busy_share(const std::optional<CpuTimes>& before,
                                 const std::optional<CpuTimes>& after) {
  if (!before || !after || after->total <= before->total || after->busy < before->busy) {
    return std::nullopt;
  }
  const double share = static_cast<double>(after->busy - before->busy) /
                       static_cast<double>(after->total - before->total);
  return std::clamp(share, 0.0, 1.0);
}

std::vector<std::string> busy_warnings(const MachineLoad& load) {
  std::vector<std::string> out;
  const double cores = std::max(1, load.cores);
  const StepMachine* busiest = nullptr;
  for (const auto& step : load.steps) {
    if (busiest == nullptr || step.client_cores > busiest->client_cores) busiest = &step;
  }
  if (busiest != nullptr && busiest->client_cores > kClientShareLimit * cores) {
    out.push_back("the client itself used " + fixed(busiest->client_cores, 2) + " of the " +
                  std::to_string(load.cores) + " cores (" +
                  fixed(100.0 * busiest->client_cores / cores, 0) + "%) in step " + busiest->step +
                  "; if the server runs on this machine, that CPU was taken from it and the "
                  "figures may be low (--verify header lowers the client's share)");
  }
  double peak = -1;
  std::string peak_step;
  for (const auto& step : load.steps) {
    if (step.load1 > peak) {
      peak = step.load1;
      peak_step = step.step;
    }
  }
  if (load.load1_before > cores) {
    out.push_back("the load average was " + fixed(load.load1_before, 2) +
                  " before the run, above the " + std::to_string(load.cores) +
                  " cores: other work was competing for the CPU and the figures may be skewed");
  } else if (peak > cores) {
    out.push_back("the load average reached " + fixed(peak, 2) + " (after step " + peak_step +
                  "), above the " + std::to_string(load.cores) +
                  " cores: threads were waiting for a CPU, so latencies include that wait and "
                  "the figures may be skewed");
  }
  return out;
}

}  // namespace pixpool::bench
