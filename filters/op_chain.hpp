#pragma once
// The op chain: which filters run, in which order, with which arguments.
// Text form (query parameter `ops`): ops separated by commas, each `name`,
// `name:value` or `name:key=value`, e.g. "blur:5,contour", "blur:sigma=2.5".

#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "filters/strips.hpp"

namespace pixpool {

enum class OpKind { blur, contour, sleep, crash, hog };  // the last three: test-only

struct Op {
  OpKind kind;
  double param = 0.0;  // blur: sigma; sleep: ms; hog: MB; others: unused
  bool operator==(const Op&) const = default;
};

using OpChain = std::vector<Op>;

inline constexpr std::string_view kDefaultOps = "blur:5,contour";
inline constexpr std::size_t kMaxOps = 16;  // bounds the work one request can ask for

// Parses the text form. Errors (invalid_ops) name the offending op and argument:
// unknown op, unknown argument name, a value that is not a number or out of
// range, an empty item, or more than kMaxOps ops. The test-only ops of
// filters/test_ops.hpp parse only when `allow_test_ops` is true.
Result<OpChain> parse_ops(std::string_view text, bool allow_test_ops = false);

// Canonical text form, e.g. "blur:5,contour"; parse_ops(format_ops(c)) == c.
std::string format_ops(const OpChain& chain);

// Runs the chain left to right on `src` (CV_8U with 1, 3 or 4 channels) into
// `dst` (same size and type). An alpha channel is carried through unchanged:
// filters see only the colour channels. A blur directly followed by contour
// runs as one fused pass (same output). Filters split rows into strips
// through `strips` (empty: this thread only). Errors: invalid_parameter for
// other image types or an op argument out of range.
Result<void> apply_ops(const cv::Mat& src, cv::Mat& dst, const OpChain& chain,
                       const StripRunner& strips = {});

}  // namespace pixpool
