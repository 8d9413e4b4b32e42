#pragma once
// The benchmark's outputs: the stdout table and the report folder
// (report.json, throughput.svg, latency.svg, index.html). The table and the
// HTML are rendered from the same JSON that report.json holds, so they
// always agree.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/corpus.hpp"
#include "bench/options.hpp"
#include "bench/runner.hpp"
#include "core/result.hpp"

namespace pixpool::bench {

// Keys keep their insertion order, so report.json reads top-down.
using Json = nlohmann::ordered_json;

// Everything about a run except its steps.
struct RunInfo {
  std::string command_line;  // as typed, shell-quoted
  std::string timestamp;     // UTC ISO 8601, when the run started
  BenchOptions options;
  Json corpus;               // corpus_json()
  Json server;               // the server's /v1/backends at the start, or null
  int cores = 0;             // online cores of this machine; 0: ask the system
  double load1_before = -1;  // 1-minute load average before the first step, -1 unknown
};

// Median, min, max and sample standard deviation of one figure over repeats.
struct Spread {
  std::size_t runs = 0;
  double median = 0;
  double min = 0;
  double max = 0;
  double stddev = 0;  // 0 for a single run
};
std::optional<Spread> spread_of(std::vector<double> values);  // nullopt when empty

// Per backend x concurrency (in order of first appearance) over its repeats:
// runs, and the spread of images_per_s, latency p50 and p99 (ms; null when
// no run had a verified request), from step_json() data.
Json spread_json(const Json& steps);

// The machine section: cores, load before, per step the client's cores
// (CPU s per wall s), the system's CPU busy % and the load average, and the
// busy_warnings() (bench/machine.hpp).
Json machine_json(const RunInfo& info, const std::vector<StepResult>& steps);

// What follows the table on stdout: the spread over repeats (when there are
// any) and the busy-machine warnings, from report_json() data.
std::string format_summary(const Json& report);

Json corpus_json(const Corpus& corpus);
// One step: counts, rates, latency percentiles (ms), errors, stage means.
Json step_json(const StepResult& step);
// The whole report; `exit_status` is what run_bench returns.
Json report_json(const RunInfo& info, const std::vector<StepResult>& steps, int exit_status,
                 bool interrupted);

// The table: a header line, then one line per step, from step_json() data.
// Batch mode adds an `images` column.
std::string table_header(Mode mode);
std::string table_row(const Json& step, Mode mode);
std::string format_table(const Json& report);

// The gnuplot script that draws throughput.svg and latency.svg (file names
// relative to the folder gnuplot runs in).
std::string gnuplot_script(const Json& report);

// The self-contained HTML page; an empty SVG string shows a note instead.
std::string html_report(const Json& report, const std::string& throughput_svg,
                        const std::string& latency_svg);

struct ReportOutcome {
  bool plots = false;  // both SVGs were drawn
  std::string note;    // why the plots were skipped, if they were
};

// Creates `dir` if needed and checks it is writable. Errors: invalid_parameter.
Result<void> prepare_report_dir(const std::string& dir);

// Writes report.json, plots.gp + the two SVGs (when `gnuplot` runs) and
// index.html into `dir`; `report` gets a "plots" section. Missing gnuplot is
// not an error. Errors: internal when a file cannot be written.
Result<ReportOutcome> write_report(const std::string& dir, Json& report,
                                   const std::string& gnuplot);

// Quotes `text` for /bin/sh when it holds anything but safe characters.
std::string shell_quote(const std::string& text);

}  // namespace pixpool::bench
