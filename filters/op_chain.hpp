#pragma once
// The op chain: which filters run, in which order, with which arguments.
// Text form (query parameter `ops`): ops separated by commas, each `name` or
// `name:` followed by ':'-separated arguments, each a value (the next declared
// argument) or `key=value`: "blur:5,contour", "blur:sigma=2.5". The ops and
// their arguments come from an OpRegistry (filters/op_registry.hpp).

#include <opencv2/core.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "filters/op_registry.hpp"
#include "filters/strips.hpp"

namespace pixpool {

using OpChain = std::vector<Op>;

inline constexpr std::string_view kDefaultOps = "blur:5,contour";
inline constexpr std::size_t kMaxOps = 16;  // bounds the work one request can ask for

// Parses the text form against `registry`. Errors (invalid_ops) name the
// offending op and argument: unknown op (listing the valid ones), unknown
// argument name, a value that is not a number (or not whole, for integer
// arguments) or is out of range, a missing required argument, too many
// arguments, an empty item, or more than kMaxOps ops.
Result<OpChain> parse_ops(std::string_view text, const OpRegistry& registry = default_registry());

// Canonical text form: every argument positional, numbers in their shortest
// exact decimal ("blur:5,contour"); parse_ops(format_ops(c)) == c.
std::string format_ops(const OpChain& chain);

// Runs the chain left to right on `src` (CV_8U with 1, 3 or 4 channels) into
// `dst` (same size and type). An alpha channel is carried through unchanged:
// ops see only the colour channels. An op directly followed by the op it
// declares it fuses with runs as one fused pass (same output). Ops split
// rows into strips through `strips` (empty: this thread only). Errors:
// invalid_parameter for other image types, or those of the ops.
Result<void> apply_ops(const cv::Mat& src, cv::Mat& dst, const OpChain& chain,
                       const StripRunner& strips = {});

}  // namespace pixpool
