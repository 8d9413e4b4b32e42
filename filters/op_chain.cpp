#include "filters/op_chain.hpp"

#include <charconv>
#include <cmath>
#include <opencv2/core.hpp>
#include <utility>

#include "core/text.hpp"

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

std::string arg_names(const OpDef& def) {
  std::string out;
  for (const OpArg& arg : def.args) {
    if (!out.empty()) out += ", ";
    out += arg.name;
  }
  return out;
}

Result<double> parse_value(const OpDef& def, const OpArg& arg, std::string_view text) {
  double value = 0.0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  const bool whole = arg.type != ArgType::integer || std::floor(value) == value;
  if (text.empty() || ec != std::errc{} || ptr != last || !std::isfinite(value) || !whole ||
      value < arg.min || value > arg.max) {
    return ops_error("op " + quoted(def.name) + ": argument " + quoted(arg.name) + " must be " +
                     (arg.type == ArgType::integer ? "a whole number" : "a number") + " between " +
                     shortest_decimal(arg.min) + " and " + shortest_decimal(arg.max) + ", got " +
                     quoted(text));
  }
  return value;
}

// `args_text`: what follows "name:", already known non-empty when present.
Result<Op> parse_args(const OpDef& def, std::string_view args_text) {
  Op op{&def, std::vector<double>(def.args.size(), 0.0)};
  std::vector<bool> given(def.args.size(), false);
  std::size_t next_positional = 0;
  while (!args_text.empty()) {
    const auto colon = args_text.find(':');
    const std::string_view item = trim(args_text.substr(0, colon));
    args_text = colon == std::string_view::npos ? std::string_view() : args_text.substr(colon + 1);
    if (def.args.empty()) {
      return ops_error("op " + quoted(def.name) + " takes no arguments, got " + quoted(item));
    }
    std::size_t index = next_positional;
    std::string_view value = item;
    if (auto eq = item.find('='); eq != std::string_view::npos) {
      const std::string_view key = trim(item.substr(0, eq));
      value = trim(item.substr(eq + 1));
      index = def.args.size();
      for (std::size_t i = 0; i < def.args.size(); ++i) {
        if (def.args[i].name == key) index = i;
      }
      if (index == def.args.size()) {
        return ops_error("op " + quoted(def.name) + ": unknown argument " + quoted(key) +
                         " (valid: " + arg_names(def) + ")");
      }
    } else {
      if (index >= def.args.size()) {
        return ops_error("op " + quoted(def.name) + " takes at most " +
                         std::to_string(def.args.size()) + " argument(s) (" + arg_names(def) +
                         "), got " + quoted(item));
      }
      next_positional = index + 1;
    }
    if (given[index]) {
      return ops_error("op " + quoted(def.name) + ": argument " + quoted(def.args[index].name) +
                       " is given twice");
    }
    auto parsed = parse_value(def, def.args[index], value);
    if (!parsed) return parsed.error();
    op.args[index] = *parsed;
    given[index] = true;
  }
  for (std::size_t i = 0; i < def.args.size(); ++i) {
    if (given[i]) continue;
    if (!def.args[i].default_value) {
      return ops_error("op " + quoted(def.name) + ": argument " + quoted(def.args[i].name) +
                       " is required (e.g. " + std::string(def.name) + ":" +
                       shortest_decimal(def.args[i].min) + ")");
    }
    op.args[i] = *def.args[i].default_value;
  }
  return op;
}

Result<Op> parse_one(std::string_view item, const OpRegistry& registry) {
  std::string_view name = item;
  std::string_view args;
  const auto colon = item.find(':');
  if (colon != std::string_view::npos) {
    name = trim(item.substr(0, colon));
    args = trim(item.substr(colon + 1));
  }
  const OpDef* def = registry.find(name);
  if (def == nullptr) {
    return ops_error("unknown op " + quoted(name) + " (valid ops: " + registry.names() + ")");
  }
  if (colon != std::string_view::npos && args.empty()) {
    return ops_error("op " + quoted(name) + ": empty argument after ':'");
  }
  return parse_args(*def, args);
}

}  // namespace

Result<OpChain> parse_ops(std::string_view text, const OpRegistry& registry) {
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
    auto op = parse_one(item, registry);
    if (!op) return op.error();
    chain.push_back(std::move(op.value()));
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
    out += op.name();
    for (double value : op.args) out += ":" + shortest_decimal(value);
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
    if (op.def == nullptr) return {ErrorCode::internal, "op chain holds an undeclared op"};
    const Op* next = i + 1 < chain.size() ? &chain[i + 1] : nullptr;
    if (next != nullptr && op.def->run_fused != nullptr && next->name() == op.def->fuses_with) {
      if (auto r = op.def->run_fused(op.args, next->args, colour, colour, strips); !r) return r;
      ++i;
      continue;
    }
    if (auto r = op.def->run(op.args, colour, colour, strips); !r) return r;
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
