#pragma once
// The op registry: every filter op declares, in its own file under
// filters/ops/, its name, its arguments (name, type, range, default, help) and
// how it runs (libvips' operation table is the model). Parsing, canonical
// formatting, error messages, the --help/README text of the ops and what
// crosses to a worker process are all derived from these declarations, so
// adding an op means adding one file and listing it (filters/ops/
// builtin_ops.hpp/.cpp, filters/CMakeLists.txt); README.md, "Adding an op".

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "filters/strips.hpp"

namespace cv {
class Mat;
}

namespace pixpool {

enum class ArgType {
  number,   // any finite decimal, e.g. 2.5 or 1e1
  integer,  // a whole number
};

struct OpArg {
  std::string_view name;  // as written in `name=value`, e.g. "sigma"
  ArgType type = ArgType::number;
  double min = 0;
  double max = 0;
  std::optional<double> default_value;  // nullopt: the argument is required
  std::string_view help;
};

// Runs an op on `src` into `dst` (which may alias `src`); `args` holds one
// value per declared argument, in declaration order, already range-checked.
using OpRunFn = Result<void> (*)(std::span<const double> args, const cv::Mat& src, cv::Mat& dst,
                                 const StripRunner& strips);

// An op may run fused with the op that directly follows it (same output,
// one pass): blur then contour.
using OpFusedFn = Result<void> (*)(std::span<const double> args, std::span<const double> next_args,
                                   const cv::Mat& src, cv::Mat& dst, const StripRunner& strips);

struct OpDef {
  std::string_view name;  // lower-case identifier used in `ops=`
  std::string_view help;  // one line for --help and the README
  std::vector<OpArg> args;
  OpRunFn run = nullptr;
  std::string_view fuses_with;  // name of the op this one fuses with, or ""
  OpFusedFn run_fused = nullptr;
};

inline constexpr std::size_t kMaxOpArgs = 4;  // bounds the worker wire format

// One parsed op: its declaration and one value per declared argument.
struct Op {
  const OpDef* def = nullptr;
  std::vector<double> args;

  std::string_view name() const { return def != nullptr ? def->name : std::string_view(); }
  bool operator==(const Op& other) const { return def == other.def && args == other.args; }
};

// A set of ops looked up by name. Registries are filled at startup, before
// any thread or worker process exists, and only read afterwards.
class OpRegistry {
 public:
  // Adds `def` (which must outlive the registry: op files declare theirs
  // static). Errors: invalid_parameter for a duplicate name, an empty name,
  // more than kMaxOpArgs arguments or a missing run function.
  Result<void> add(const OpDef& def);

  // The op of that name, or nullptr.
  const OpDef* find(std::string_view name) const;

  const std::vector<const OpDef*>& ops() const { return ops_; }

  // "blur, contour": the names in registration order.
  std::string names() const;

  // The ops as plain text, for --help: one block per op with its arguments.
  std::string help_text() const;

  // The ops as a Markdown table, for the README (a test keeps them equal).
  std::string markdown() const;

 private:
  std::vector<const OpDef*> ops_;
};

// The registry with the built-in ops (blur, contour); nothing else.
OpRegistry builtin_registry();

// The process-wide registry that parse_ops uses by default: the built-in ops,
// plus whatever main() adds at startup (the test-only ops of
// filters/test_ops/ under --enable-test-ops). Worker processes are forked
// after that and inherit it. Not thread-safe to modify once threads run.
OpRegistry& default_registry();

}  // namespace pixpool
