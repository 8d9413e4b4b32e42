#include "filters/op_chain.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <utility>

#include "filters/blur.hpp"
#include "filters/contour.hpp"
#include "filters/test_ops.hpp"

namespace pixpool {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error ops_error(std::string message) {
  return Error{ErrorCode::invalid_ops, std::move(message)};
}

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.append(1, '\'').append(s).append(1, '\'');
  return out;
}

// Shortest decimal that reads back to the same double ("5", "2.5", "0.1").
std::string format_number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

Result<double> parse_number(std::string_view op, std::string_view arg, std::string_view text,
                            double min, double max) {
  double value = 0.0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec != std::errc{} || ptr != last || !std::isfinite(value) || value < min ||
      value > max) {
    return ops_error("op " + quoted(op) + ": argument " + quoted(arg) +
                     " must be a number between " + format_number(min) + " and " +
                     format_number(max) + ", got " + quoted(text));
  }
  return value;
}

Result<Op> parse_blur(std::string_view args) {
  Op op{OpKind::blur, kBlurDefaultSigma};
  if (args.empty()) return op;
  std::string_view value = args;
  if (auto eq = args.find('='); eq != std::string_view::npos) {
    std::string_view key = trim(args.substr(0, eq));
    if (key != "sigma") {
      return ops_error("op 'blur': unknown argument " + quoted(key) + " (valid: sigma)");
    }
    value = trim(args.substr(eq + 1));
  }
  auto sigma = parse_number("blur", "sigma", value, kBlurMinSigma, kBlurMaxSigma);
  if (!sigma) return sigma.error();
  op.param = *sigma;
  return op;
}

Result<Op> parse_contour(std::string_view args) {
  if (!args.empty()) {
    return ops_error("op 'contour' takes no arguments, got " + quoted(args));
  }
  return Op{OpKind::contour, 0.0};
}

// Test ops: `sleep:MS`, `crash`, `hog:MB`.
Result<Op> parse_test_op(std::string_view name, std::string_view args) {
  if (name == "crash") {
    if (!args.empty()) return ops_error("op 'crash' takes no arguments");
    return Op{OpKind::crash, 0.0};
  }
  const bool sleep = name == "sleep";
  auto value =
      parse_number(name, sleep ? "ms" : "mb", args, sleep ? 0 : 1, sleep ? kSleepMaxMs : kHogMaxMb);
  if (!value) return value.error();
  return Op{sleep ? OpKind::sleep : OpKind::hog, *value};
}

Result<Op> parse_one(std::string_view item, bool allow_test_ops) {
  std::string_view name = item;
  std::string_view args;
  if (auto colon = item.find(':'); colon != std::string_view::npos) {
    name = trim(item.substr(0, colon));
    args = trim(item.substr(colon + 1));
    if (args.empty()) return ops_error("op " + quoted(name) + ": empty argument after ':'");
  }
  if (name == "blur") return parse_blur(args);
  if (name == "contour") return parse_contour(args);
  if (allow_test_ops && (name == "sleep" || name == "crash" || name == "hog")) {
    return parse_test_op(name, args);
  }
  return ops_error("unknown op " + quoted(name) + " (valid ops: blur, contour)");
}

Result<void> run_op(const Op& op, const cv::Mat& src, cv::Mat& dst, const StripRunner& strips) {
  switch (op.kind) {
    case OpKind::blur:
      return blur(src, dst, op.param, strips);
    case OpKind::contour:
      return contour(src, dst, strips);
    case OpKind::sleep:
      test_sleep(op.param);
      break;
    case OpKind::crash:
      test_crash();
    case OpKind::hog:
      test_hog(op.param);
      break;
  }
  if (dst.data != src.data) dst = src;  // test ops leave pixels alone
  return {};
}

}  // namespace

Result<OpChain> parse_ops(std::string_view text, bool allow_test_ops) {
  text = trim(text);
  if (text.empty()) return ops_error("ops is empty (example: ops=blur:5,contour)");
  OpChain chain;
  std::size_t position = 1;
  while (true) {
    const auto comma = text.find(',');
    const std::string_view item = trim(text.substr(0, comma));
    if (item.empty()) return ops_error("op #" + std::to_string(position) + " is empty");
    if (chain.size() == kMaxOps) {
      return ops_error("too many ops (at most " + std::to_string(kMaxOps) + ")");
    }
    auto op = parse_one(item, allow_test_ops);
    if (!op) return op.error();
    chain.push_back(*op);
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
    ++position;
  }
  return chain;
}

std::string format_ops(const OpChain& chain) {
  std::string out;
  for (const Op& op : chain) {
    if (!out.empty()) out += ',';
    switch (op.kind) {
      case OpKind::blur:
        out += "blur:" + format_number(op.param);
        break;
      case OpKind::contour:
        out += "contour";
        break;
      case OpKind::sleep:
        out += "sleep:" + format_number(op.param);
        break;
      case OpKind::crash:
        out += "crash";
        break;
      case OpKind::hog:
        out += "hog:" + format_number(op.param);
        break;
    }
  }
  return out;
}

Result<void> apply_ops(const cv::Mat& src, cv::Mat& dst, const OpChain& chain,
                       const StripRunner& strips) {
  if (src.depth() != CV_8U || (src.channels() != 1 && src.channels() != 3 && src.channels() != 4)) {
    return {ErrorCode::invalid_parameter, "filters expect an 8-bit grey, BGR or BGRA image"};
  }
  cv::Mat colour;
  cv::Mat alpha;
  if (src.channels() == 4) {
    cv::Mat planes[2] = {cv::Mat(src.size(), CV_8UC3), cv::Mat(src.size(), CV_8UC1)};
    const int from_to[] = {0, 0, 1, 1, 2, 2, 3, 3};
    cv::mixChannels(&src, 1, planes, 2, from_to, 4);
    colour = planes[0];
    alpha = planes[1];
  } else {
    colour = src;
  }
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const Op& op = chain[i];
    if (op.kind == OpKind::blur && i + 1 < chain.size() && chain[i + 1].kind == OpKind::contour) {
      // The default chain: one fused pass, identical output (see blur.hpp).
      if (auto r = blur_contour(colour, colour, op.param, strips); !r) return r;
      ++i;
      continue;
    }
    if (auto r = run_op(op, colour, colour, strips); !r) return r;
  }
  if (alpha.empty()) {
    dst = colour.data == src.data ? colour.clone() : colour;
    return {};
  }
  cv::Mat planes[2] = {colour, alpha};
  cv::Mat out(src.size(), CV_8UC4);
  const int from_to[] = {0, 0, 1, 1, 2, 2, 3, 3};
  cv::mixChannels(planes, 2, &out, 1, from_to, 4);
  dst = std::move(out);
  return {};
}

}  // namespace pixpool
