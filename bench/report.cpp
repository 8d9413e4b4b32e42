#include "bench/report.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "bench/machine.hpp"

namespace pixpool::bench {
namespace {

namespace fs = std::filesystem;

double ns_to_ms(std::int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

// Rounds for JSON readability: 3 decimals are far below measurement noise.
double round3(double value) {
  return std::round(value * 1000.0) / 1000.0;
}

std::string printf_string(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool write_whole(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  return static_cast<bool>(out);
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A double-quoted gnuplot string.
std::string gnuplot_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// True when `program` names an executable file, directly or on $PATH.
bool find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) dir = ".";
    if (access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Backends in order of first appearance in the steps.
std::vector<std::string> backends_of(const Json& steps) {
  std::vector<std::string> out;
  for (const auto& step : steps) {
    const std::string name = step["backend"];
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

// The x axis setup shared by both plots: the tics are the concurrencies run.
std::string x_axis(const Json& steps) {
  std::set<int> values;
  for (const auto& step : steps) values.insert(step["concurrency"].get<int>());
  std::ostringstream out;
  out << "set xlabel \"concurrent clients\"\n";
  out << "set xtics (";
  for (auto it = values.begin(); it != values.end(); ++it) {
    out << (it == values.begin() ? "" : ", ") << *it;
  }
  out << ")\n";
  const int lo = values.empty() ? 1 : *values.begin();
  const int hi = values.empty() ? 1 : *values.rbegin();
  if (hi >= 4 * lo) {
    out << "set logscale x 2\n";
    out << "set xrange [" << lo / 1.3 << ":" << hi * 1.3 << "]\n";
  } else {
    const double pad = std::max(0.5, (hi - lo) * 0.1);
    out << "set xrange [" << std::max(0.0, lo - pad) << ":" << hi + pad << "]\n";
  }
  return out.str();
}

std::string svg_part(const std::string& svg) {
  const auto start = svg.find("<svg");
  return start == std::string::npos ? std::string() : svg.substr(start);
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The <svg> element of a gnuplot SVG file, with its ids (and references to
// them) prefixed: both plots define the same ids, which must stay unique
// once inlined into one page.
std::string inline_svg(const std::string& svg, const std::string& prefix) {
  std::string out = svg_part(svg);
  for (const char* quote : {"'", "\""}) {
    replace_all(out, std::string("id=") + quote, std::string("id=") + quote + prefix);
    replace_all(out, std::string("href=") + quote + "#",
                std::string("href=") + quote + "#" + prefix);
  }
  replace_all(out, "url(#", "url(#" + prefix);
  return out;
}

}  // namespace

std::string shell_quote(const std::string& text) {
  const bool safe = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_./:,=@%+", c) != nullptr;
  });
  if (safe) return text;
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

Json corpus_json(const Corpus& corpus) {
  Json images = Json::array();
  for (const auto& image : corpus.images) {
    images.push_back({{"name", image.name},
                      {"width", image.width},
                      {"height", image.height},
                      {"format", std::string(format_name(image.format))},
                      {"bytes", image.bytes.size()}});
  }
  return {{"source", corpus.source},
          {"count", corpus.images.size()},
          {"total_bytes", corpus.total_bytes()},
          {"images", images}};
}

Json step_json(const StepResult& step) {
  const LatencyHistogram& h = step.latency;
  Json latency = {{"count", h.count()},
                  {"min", round3(ns_to_ms(h.min()))},
                  {"mean", round3(h.mean() / 1e6)},
                  {"p50", round3(ns_to_ms(h.percentile(50)))},
                  {"p90", round3(ns_to_ms(h.percentile(90)))},
                  {"p95", round3(ns_to_ms(h.percentile(95)))},
                  {"p99", round3(ns_to_ms(h.percentile(99)))},
                  {"p999", round3(ns_to_ms(h.percentile(99.9)))},
                  {"max", round3(ns_to_ms(h.max()))}};
  Json timing = {{"samples", step.stages.samples}};
  for (std::size_t i = 0; i < kStages.size(); ++i) {
    timing[kStages[i]] = round3(step.stages.mean_ms(i));
  }
  return {{"backend", step.backend},
          {"concurrency", step.concurrency},
          {"requests", step.requests},
          {"images", step.images_ok},
          {"input_bytes", step.input_bytes},
          {"elapsed_s", round3(step.elapsed_s)},
          {"images_per_s", round3(step.images_per_s())},
          {"megabytes_per_s", round3(step.megabytes_per_s())},
          {"latency_ms", latency},
          {"errors",
           {{"total", step.errors.total()},
            {"http", step.errors.http},
            {"verification", step.errors.verification},
            {"connection", step.errors.connection},
            {"by_kind", step.errors.by_kind},
            {"examples", step.errors.first_message}}},
          {"server_timing_ms", timing},
          {"client_cpu_s", round3(step.client_cpu_s)},
          {"machine",
           {{"client_cores", round3(step.elapsed_s > 0 ? step.client_cpu_s / step.elapsed_s : 0)},
            {"system_busy_pct",
             step.system_busy < 0 ? Json(nullptr) : Json(round3(100 * step.system_busy))},
            {"load1", step.load1 < 0 ? Json(nullptr) : Json(round3(step.load1))}}},
          {"repeat", step.repeat},
          {"interrupted", step.interrupted}};
}

std::optional<Spread> spread_of(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  Spread out;
  out.runs = n;
  out.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  out.min = values.front();
  out.max = values.back();
  if (n > 1) {
    double mean = 0;
    for (double v : values) mean += v;
    mean /= static_cast<double>(n);
    double squares = 0;
    for (double v : values) squares += (v - mean) * (v - mean);
    out.stddev = std::sqrt(squares / static_cast<double>(n - 1));
  }
  return out;
}

Json spread_json(const Json& steps) {
  struct Group {
    std::string backend;
    int concurrency = 0;
    std::vector<double> throughput, p50, p99;
  };
  std::vector<Group> groups;
  for (const auto& step : steps) {
    const std::string backend = step["backend"];
    const int concurrency = step["concurrency"];
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.backend == backend && g.concurrency == concurrency;
    });
    if (it == groups.end())
      it = groups.insert(groups.end(), Group{backend, concurrency, {}, {}, {}});
    it->throughput.push_back(step["images_per_s"].get<double>());
    const auto& latency = step["latency_ms"];
    if (latency["count"].get<std::uint64_t>() > 0) {
      it->p50.push_back(latency["p50"].get<double>());
      it->p99.push_back(latency["p99"].get<double>());
    }
  }
  auto figure = [](const std::vector<double>& values) {
    const auto spread = spread_of(values);
    if (!spread) return Json(nullptr);
    return Json{{"median", round3(spread->median)},
                {"min", round3(spread->min)},
                {"max", round3(spread->max)},
                {"stddev", round3(spread->stddev)}};
  };
  Json out = Json::array();
  for (const auto& g : groups) {
    out.push_back({{"backend", g.backend},
                   {"concurrency", g.concurrency},
                   {"runs", g.throughput.size()},
                   {"images_per_s", figure(g.throughput)},
                   {"p50_ms", figure(g.p50)},
                   {"p99_ms", figure(g.p99)}});
  }
  return out;
}

Json machine_json(const RunInfo& info, const std::vector<StepResult>& steps) {
  MachineLoad load;
  load.cores = info.cores > 0 ? info.cores : online_cores();
  load.load1_before = info.load1_before;
  Json per_step = Json::array();
  double client_max = 0;
  double load_max = info.load1_before;
  double busy_sum = 0;
  int busy_count = 0;
  for (const auto& step : steps) {
    StepMachine m;
    m.step = step.backend + " c=" + std::to_string(step.concurrency) +
             (step.repeat > 1 ? " #" + std::to_string(step.repeat) : "");
    m.client_cores = step.elapsed_s > 0 ? step.client_cpu_s / step.elapsed_s : 0;
    m.system_busy = step.system_busy;
    m.load1 = step.load1;
    load.steps.push_back(m);
    client_max = std::max(client_max, m.client_cores);
    load_max = std::max(load_max, m.load1);
    if (m.system_busy >= 0) {
      busy_sum += m.system_busy;
      ++busy_count;
    }
  }
  auto known = [](double value, double scale = 1) {
    return value < 0 ? Json(nullptr) : Json(round3(value * scale));
  };
  return {{"cores", load.cores},
          {"load1_before", known(load.load1_before)},
          {"load1_max", known(load_max)},
          {"client_cores_max", round3(client_max)},
          {"client_share_max_pct", round3(100 * client_max / load.cores)},
          {"system_busy_pct_mean",
           busy_count == 0 ? Json(nullptr) : Json(round3(100 * busy_sum / busy_count))},
          {"client_share_limit_pct", round3(100 * kClientShareLimit)},
          {"warnings", busy_warnings(load)}};
}

std::string format_summary(const Json& report) {
  std::string out;
  const int repeats = report["settings"].value("repeats", 1);
  if (repeats > 1 && report.contains("spread")) {
    char line[300];
    out += "\nspread over " + std::to_string(repeats) + " repeats: median (min..max)\n";
    std::snprintf(line, sizeof line, "%-10s %5s %24s %24s %24s\n", "backend", "conc", "img/s",
                  "p50 ms", "p99 ms");
    out += line;
    auto cell = [](const Json& figure, const char* format) {
      if (figure.is_null()) return std::string("-");
      char buf[96];
      std::snprintf(buf, sizeof buf, format, figure["median"].get<double>(),
                    figure["min"].get<double>(), figure["max"].get<double>());
      return std::string(buf);
    };
    for (const auto& g : report["spread"]) {
      std::snprintf(line, sizeof line, "%-10s %5d %24s %24s %24s\n",
                    g["backend"].get<std::string>().c_str(), g["concurrency"].get<int>(),
                    cell(g["images_per_s"], "%.2f (%.2f..%.2f)").c_str(),
                    cell(g["p50_ms"], "%.1f (%.1f..%.1f)").c_str(),
                    cell(g["p99_ms"], "%.1f (%.1f..%.1f)").c_str());
      out += line;
    }
  }
  if (report.contains("machine")) {
    for (const auto& warning : report["machine"]["warnings"]) {
      out += "\nwarning: " + warning.get<std::string>() + "\n";
    }
  }
  return out;
}

Json report_json(const RunInfo& info, const std::vector<StepResult>& steps, int exit_status,
                 bool interrupted) {
  const BenchOptions& o = info.options;
  Json settings = {{"mode", mode_name(o.mode)},
                   {"backends", o.backends},
                   {"concurrency", o.concurrency},
                   {"duration_s", o.duration_s},
                   {"requests_per_step", o.requests},
                   {"warmup_s", o.warmup_s},
                   {"timeout_s", o.timeout_s},
                   {"ops", o.ops.empty() ? Json(nullptr) : Json(o.ops)},
                   {"format", o.format.empty() ? Json(nullptr) : Json(o.format)},
                   {"quality", o.quality == 0 ? Json(nullptr) : Json(o.quality)},
                   {"verify", o.full_verify ? "full" : "header"}};
  if (o.mode == Mode::batch) settings["batch_size"] = o.batch_size;
  if (o.mode == Mode::url) settings["source_url"] = o.source_url;
  settings["repeats"] = o.repeats;

  Json step_list = Json::array();
  std::uint64_t requests = 0, images = 0, errors = 0;
  for (const auto& step : steps) {
    step_list.push_back(step_json(step));
    requests += step.requests;
    images += step.images_ok;
    errors += step.errors.total();
  }
  return {{"tool", "pixpool bench"},
          {"report_version", 1},
          {"timestamp", info.timestamp},
          {"command_line", info.command_line},
          {"server_url", o.url},
          {"server", info.server},
          {"settings", settings},
          {"corpus", info.corpus},
          {"steps", step_list},
          {"spread", spread_json(step_list)},
          {"machine", machine_json(info, steps)},
          {"totals", {{"requests", requests}, {"images", images}, {"errors", errors}}},
          {"interrupted", interrupted},
          {"exit_status", exit_status}};
}

std::string table_header(Mode mode) {
  char line[200];
  std::snprintf(line, sizeof line, "%-10s %5s %9s%s %9s %8s %9s %9s %9s %9s %7s\n", "backend",
                "conc", "requests", mode == Mode::batch ? "    images" : "", "img/s", "MB/s",
                "p50 ms", "p95 ms", "p99 ms", "max ms", "errors");
  return line;
}

std::string table_row(const Json& step, Mode mode) {
  const auto& latency = step["latency_ms"];
  const bool has_latency = latency["count"].get<std::uint64_t>() > 0;
  auto ms = [&](const char* key) {
    return has_latency ? printf_string("%.1f", latency[key].get<double>()) : std::string("-");
  };
  const std::string images =
      mode == Mode::batch ? " " + printf_string("%9.0f", step["images"].get<double>()) : "";
  char line[300];
  std::snprintf(line, sizeof line, "%-10s %5d %9llu%s %9.2f %8.2f %9s %9s %9s %9s %7llu\n",
                step["backend"].get<std::string>().c_str(), step["concurrency"].get<int>(),
                static_cast<unsigned long long>(step["requests"].get<std::uint64_t>()),
                images.c_str(), step["images_per_s"].get<double>(),
                step["megabytes_per_s"].get<double>(), ms("p50").c_str(), ms("p95").c_str(),
                ms("p99").c_str(), ms("max").c_str(),
                static_cast<unsigned long long>(step["errors"]["total"].get<std::uint64_t>()));
  return line;
}

std::string format_table(const Json& report) {
  const Mode mode = report["settings"]["mode"] == "batch" ? Mode::batch : Mode::process;
  std::string out = table_header(mode);
  for (const auto& step : report["steps"]) out += table_row(step, mode);
  return out;
}

std::string gnuplot_script(const Json& report) {
  const auto& steps = report["steps"];
  const auto backends = backends_of(steps);
  std::ostringstream gp;
  gp << "# Made by pixpool bench from report.json; run `gnuplot plots.gp` in this folder.\n";
  gp << "set terminal svg size 800,480 font \"Helvetica,13\" background rgb \"white\" "
        "noenhanced\n";
  gp << "set grid\nset key top left\nset yrange [0:*]\n";
  gp << x_axis(steps);

  // Throughput: one line per backend; with repeats, the median with
  // min..max error bars.
  const bool repeated = report["settings"].value("repeats", 1) > 1 && report.contains("spread");
  for (std::size_t b = 0; b < backends.size(); ++b) {
    gp << "$t" << b << " << EOD\n";
    for (const auto& step : repeated ? report["spread"] : steps) {
      if (step["backend"] != backends[b]) continue;
      gp << step["concurrency"].get<int>() << " ";
      if (repeated) {
        const auto& t = step["images_per_s"];
        gp << t["median"].get<double>() << " " << t["min"].get<double>() << " "
           << t["max"].get<double>() << "\n";
      } else {
        gp << step["images_per_s"].get<double>() << "\n";
      }
    }
    gp << "EOD\n";
  }
  gp << "set output \"throughput.svg\"\n";
  gp << "set title \"pixpool throughput (verified images/s)\"\n";
  gp << "set ylabel \"images/s\"\n";
  gp << "plot ";
  for (std::size_t b = 0; b < backends.size(); ++b) {
    gp << (b == 0 ? "" : ", \\\n     ") << "$t" << b
       << (repeated ? " using 1:2:3:4 with yerrorlines" : " using 1:2 with linespoints")
       << " lw 2 pt 7 lc " << b + 1 << " title "
       << gnuplot_string(repeated ? backends[b] + " (median, min..max)" : backends[b]);
  }
  gp << "\n";

  // Latency: p50 solid, p95 dashed, p99 dotted; one colour per backend.
  std::vector<std::size_t> with_latency;
  for (std::size_t b = 0; b < backends.size(); ++b) {
    std::ostringstream block;
    int points = 0;
    for (const auto& step : steps) {
      const auto& l = step["latency_ms"];
      if (step["backend"] != backends[b] || l["count"].get<std::uint64_t>() == 0) continue;
      block << step["concurrency"].get<int>() << " " << l["p50"].get<double>() << " "
            << l["p95"].get<double>() << " " << l["p99"].get<double>() << "\n";
      ++points;
    }
    if (points == 0) continue;
    gp << "$l" << b << " << EOD\n" << block.str() << "EOD\n";
    with_latency.push_back(b);
  }
  gp << "set output \"latency.svg\"\n";
  gp << "set title \"pixpool latency (ms; p50 solid, p95 dashed, p99 dotted)\"\n";
  gp << "set key outside right top\n";
  gp << "set ylabel \"latency (ms)\"\n";
  if (with_latency.empty()) {
    // Nothing verified: an empty frame that says so, rather than no file.
    gp << "unset key\nset yrange [0:1]\n";
    gp << "set label 1 \"no successful requests\" at graph 0.5, 0.5 center\n";
    gp << "plot 1/0 notitle\n";
  } else {
    gp << "plot ";
    bool first = true;
    for (std::size_t b : with_latency) {
      const char* names[] = {"p50", "p95", "p99"};
      for (int p = 0; p < 3; ++p) {
        gp << (first ? "" : ", \\\n     ") << "$l" << b << " using 1:" << p + 2
           << " with linespoints lw 2 pt " << 7 + 2 * p << " lc " << b + 1 << " dt " << p + 1
           << " title " << gnuplot_string(backends[b] + " " + names[p]);
        first = false;
      }
    }
    gp << "\n";
  }
  gp << "unset output\n";
  return gp.str();
}

std::string html_report(const Json& report, const std::string& throughput_svg,
                        const std::string& latency_svg) {
  const auto& steps = report["steps"];
  const bool batch = report["settings"]["mode"] == "batch";
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<title>pixpool bench " << html_escape(report["timestamp"]) << "</title>\n"
    << "<style>\n"
    << "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}\n"
    << "table{border-collapse:collapse;margin:1em 0}\n"
    << "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\n"
    << "th{background:#f0f0f0}td.l,th.l{text-align:left}\n"
    << "tr.bad td{background:#fde8e8}\n"
    << "p.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:6px 10px}\n"
    << "code{background:#f5f5f5;padding:2px 4px;word-break:break-all}\n"
    << "svg{max-width:100%;height:auto}\n"
    << "</style>\n</head>\n<body>\n";
  h << "<h1>pixpool bench</h1>\n<p>";
  h << "Run at " << html_escape(report["timestamp"]) << " against <code>"
    << html_escape(report["server_url"]) << "</code>, mode <b>"
    << html_escape(report["settings"]["mode"]) << "</b>";
  if (report["settings"]["ops"].is_string()) {
    h << ", ops <code>" << html_escape(report["settings"]["ops"]) << "</code>";
  }
  h << ".<br>Command: <code>" << html_escape(report["command_line"]) << "</code></p>\n";
  const auto& corpus = report["corpus"];
  h << "<p>Corpus: " << corpus["count"].get<std::size_t>() << " images ("
    << html_escape(corpus["source"]) << "), "
    << printf_string("%.1f", corpus["total_bytes"].get<double>() / 1e6) << " MB.</p>\n";
  if (report["interrupted"].get<bool>()) {
    h << "<p><b>Interrupted</b>: the last step was cut short.</p>\n";
  }
  if (report.contains("machine")) {
    for (const auto& warning : report["machine"]["warnings"]) {
      h << "<p class=\"warn\"><b>Warning</b>: " << html_escape(warning.get<std::string>())
        << ".</p>\n";
    }
  }
  h << "<p>Exit status " << report["exit_status"].get<int>() << ": "
    << report["totals"]["errors"].get<std::uint64_t>() << " errors in "
    << report["totals"]["requests"].get<std::uint64_t>() << " requests.</p>\n";

  h << "<h2>Results</h2>\n<table>\n<tr><th class=\"l\">backend</th><th>concurrency</th>"
    << "<th>requests</th>" << (batch ? "<th>images</th>" : "")
    << "<th>img/s</th><th>MB/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th>"
    << "<th>max ms</th><th>errors</th><th>client CPU</th></tr>\n";
  for (const auto& step : steps) {
    const auto& l = step["latency_ms"];
    const bool has = l["count"].get<std::uint64_t>() > 0;
    auto ms = [&](const char* key) {
      return has ? printf_string("%.1f", l[key].get<double>()) : std::string("-");
    };
    h << "<tr" << (step["errors"]["total"].get<std::uint64_t>() > 0 ? " class=\"bad\"" : "")
      << "><td class=\"l\">" << html_escape(step["backend"]) << "</td><td>"
      << step["concurrency"].get<int>() << "</td><td>" << step["requests"].get<std::uint64_t>()
      << "</td>";
    if (batch) h << "<td>" << step["images"].get<std::uint64_t>() << "</td>";
    h << "<td>" << printf_string("%.2f", step["images_per_s"].get<double>()) << "</td><td>"
      << printf_string("%.2f", step["megabytes_per_s"].get<double>()) << "</td><td>" << ms("p50")
      << "</td><td>" << ms("p95") << "</td><td>" << ms("p99") << "</td><td>" << ms("max")
      << "</td><td>" << step["errors"]["total"].get<std::uint64_t>() << "</td><td>"
      << printf_string("%.0f%%", 100.0 * step["client_cpu_s"].get<double>() /
                                     std::max(1e-9, step["elapsed_s"].get<double>()))
      << "</td></tr>\n";
  }
  h << "</table>\n";
  h << "<p>Client CPU is this tool's own CPU time (sending, receiving, verifying) as a share "
       "of one core; it competes with the server when both run on one machine.</p>\n";

  const int repeats = report["settings"].value("repeats", 1);
  if (repeats > 1 && report.contains("spread")) {
    h << "<h2>Spread over " << repeats << " repeats</h2>\n<table>\n<tr><th class=\"l\">backend"
      << "</th><th>concurrency</th><th>runs</th><th>img/s median</th><th>img/s min..max</th>"
      << "<th>img/s stddev</th><th>p50 ms median</th><th>p50 min..max</th>"
      << "<th>p99 ms median</th><th>p99 min..max</th></tr>\n";
    auto cells = [](const Json& figure, const char* format, bool with_stddev) {
      if (figure.is_null())
        return std::string(with_stddev ? "<td>-</td><td>-</td><td>-</td>" : "<td>-</td><td>-</td>");
      std::string out = "<td>" + printf_string(format, figure["median"].get<double>()) +
                        "</td><td>" + printf_string(format, figure["min"].get<double>()) + ".." +
                        printf_string(format, figure["max"].get<double>()) + "</td>";
      if (with_stddev)
        out += "<td>" + printf_string(format, figure["stddev"].get<double>()) + "</td>";
      return out;
    };
    for (const auto& g : report["spread"]) {
      h << "<tr><td class=\"l\">" << html_escape(g["backend"]) << "</td><td>"
        << g["concurrency"].get<int>() << "</td><td>" << g["runs"].get<std::size_t>() << "</td>"
        << cells(g["images_per_s"], "%.2f", true) << cells(g["p50_ms"], "%.1f", false)
        << cells(g["p99_ms"], "%.1f", false) << "</tr>\n";
    }
    h << "</table>\n";
  }

  if (report.contains("machine")) {
    const auto& m = report["machine"];
    auto number = [](const Json& value, const char* format) {
      return value.is_null() ? std::string("unknown") : printf_string(format, value.get<double>());
    };
    h << "<h2>Machine</h2>\n<p>" << m["cores"].get<int>() << " cores; load average "
      << number(m["load1_before"], "%.2f") << " before the run, at most "
      << number(m["load1_max"], "%.2f") << "; the client used at most "
      << number(m["client_cores_max"], "%.2f") << " cores ("
      << number(m["client_share_max_pct"], "%.0f") << "% of the machine; the warning threshold is "
      << number(m["client_share_limit_pct"], "%.0f") << "%); the CPU was "
      << number(m["system_busy_pct_mean"], "%.0f") << "% busy on average.</p>\n"
      << "<table>\n<tr><th class=\"l\">backend</th><th>concurrency</th>"
      << (repeats > 1 ? "<th>repeat</th>" : "")
      << "<th>client cores</th><th>system CPU busy</th><th>load average</th></tr>\n";
    for (const auto& step : steps) {
      if (!step.contains("machine")) continue;
      const auto& sm = step["machine"];
      h << "<tr><td class=\"l\">" << html_escape(step["backend"]) << "</td><td>"
        << step["concurrency"].get<int>() << "</td>";
      if (repeats > 1) h << "<td>" << step.value("repeat", 1) << "</td>";
      h << "<td>" << number(sm["client_cores"], "%.2f") << "</td><td>"
        << number(sm["system_busy_pct"], "%.0f%%") << "</td><td>" << number(sm["load1"], "%.2f")
        << "</td></tr>\n";
    }
    h << "</table>\n";
  }

  h << "<h2>Plots</h2>\n";
  if (throughput_svg.empty() || latency_svg.empty()) {
    std::string note = "plots were skipped";
    if (report.contains("plots") && report["plots"]["note"].is_string()) {
      note = report["plots"]["note"];
    }
    h << "<p>" << html_escape(note) << "</p>\n";
  } else {
    h << "<figure>" << inline_svg(throughput_svg, "throughput_") << "</figure>\n";
    h << "<figure>" << inline_svg(latency_svg, "latency_") << "</figure>\n";
  }

  h << "<h2>Server-Timing (mean ms per image)</h2>\n<table>\n<tr><th class=\"l\">backend</th>"
    << "<th>concurrency</th><th>samples</th>";
  for (const char* stage : kStages) h << "<th>" << stage << "</th>";
  h << "</tr>\n";
  for (const auto& step : steps) {
    const auto& t = step["server_timing_ms"];
    h << "<tr><td class=\"l\">" << html_escape(step["backend"]) << "</td><td>"
      << step["concurrency"].get<int>() << "</td><td>" << t["samples"].get<std::uint64_t>()
      << "</td>";
    for (const char* stage : kStages) {
      h << "<td>" << printf_string("%.2f", t[stage].get<double>()) << "</td>";
    }
    h << "</tr>\n";
  }
  h << "</table>\n";

  bool any_errors = false;
  for (const auto& step : steps) any_errors |= step["errors"]["total"].get<std::uint64_t>() > 0;
  if (any_errors) {
    h << "<h2>Errors</h2>\n<table>\n<tr><th class=\"l\">backend</th><th>concurrency</th>"
      << "<th class=\"l\">kind</th><th>count</th><th class=\"l\">example</th></tr>\n";
    for (const auto& step : steps) {
      for (const auto& [kind, count] : step["errors"]["by_kind"].items()) {
        const auto& examples = step["errors"]["examples"];
        h << R"(<tr class="bad"><td class="l">)" << html_escape(step["backend"]) << "</td><td>"
          << step["concurrency"].get<int>() << "</td><td class=\"l\">" << html_escape(kind)
          << "</td><td>" << count.get<std::uint64_t>() << "</td><td class=\"l\">"
          << html_escape(examples.value(kind, std::string())) << "</td></tr>\n";
      }
    }
    h << "</table>\n";
  }
  h << "<p>All figures are in <a href=\"report.json\">report.json</a>. Latency runs from "
       "sending the request to its last byte, for requests that verified; percentiles come "
       "from a log-linear histogram (under 0.4% error). MB/s counts input bytes.</p>\n";
  h << "</body>\n</html>\n";
  return h.str();
}

Result<void> prepare_report_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return Error{ErrorCode::invalid_parameter, "--report: cannot create the folder '" + dir + "'" +
                                                   (ec ? ": " + ec.message() : std::string())};
  }
  if (access(dir.c_str(), W_OK) != 0) {
    return Error{ErrorCode::invalid_parameter,
                 "--report: the folder '" + dir + "' is not writable"};
  }
  return {};
}

Result<ReportOutcome> write_report(const std::string& dir, Json& report,
                                   const std::string& gnuplot) {
  const fs::path folder(dir);
  ReportOutcome outcome;
  std::string throughput_svg, latency_svg;

  const std::string script = gnuplot_script(report);
  if (!write_whole(folder / "plots.gp", script)) {
    return Error{ErrorCode::internal, "cannot write " + (folder / "plots.gp").string()};
  }
  if (!find_program(gnuplot)) {
    outcome.note = "plots skipped: gnuplot not found (install the Debian package gnuplot-nox)";
  } else {
    std::error_code ignored;
    fs::remove(folder / "throughput.svg", ignored);
    fs::remove(folder / "latency.svg", ignored);
    const std::string command =
        "cd " + shell_quote(dir) + " && " + shell_quote(gnuplot) + " plots.gp 2>&1";
    std::string output;
    int status = -1;
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buf[1024];
      std::size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
      status = pclose(pipe);
    }
    throughput_svg = read_whole(folder / "throughput.svg");
    latency_svg = read_whole(folder / "latency.svg");
    const bool ran = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ran && !svg_part(throughput_svg).empty() && !svg_part(latency_svg).empty()) {
      outcome.plots = true;
    } else {
      outcome.note = "plots skipped: gnuplot failed: " + output.substr(0, 500);
      throughput_svg.clear();
      latency_svg.clear();
    }
  }
  report["plots"] = {{"throughput", outcome.plots ? Json("throughput.svg") : Json(nullptr)},
                     {"latency", outcome.plots ? Json("latency.svg") : Json(nullptr)},
                     {"script", "plots.gp"},
                     {"note", outcome.plots ? Json(nullptr) : Json(outcome.note)}};

  if (!write_whole(folder / "report.json", report.dump(2) + "\n")) {
    return Error{ErrorCode::internal, "cannot write " + (folder / "report.json").string()};
  }
  if (!write_whole(folder / "index.html", html_report(report, throughput_svg, latency_svg))) {
    return Error{ErrorCode::internal, "cannot write " + (folder / "index.html").string()};
  }
  return outcome;
}

}  // namespace pixpool::bench
