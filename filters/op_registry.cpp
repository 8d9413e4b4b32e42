#include "filters/op_registry.hpp"

#include <cstdio>

#include "core/text.hpp"
#include "filters/ops/builtin_ops.hpp"

namespace pixpool {
namespace {

std::string arg_signature(const OpDef& def) {
  std::string out;
  for (const OpArg& arg : def.args) {
    out += ":";
    out += arg.name;
  }
  return out;
}

std::string arg_range(const OpArg& arg) {
  std::string out = (arg.type == ArgType::integer ? "integer " : "number ") +
                    shortest_decimal(arg.min) + ".." + shortest_decimal(arg.max);
  out += arg.default_value ? ", default " + shortest_decimal(*arg.default_value) : ", required";
  return out;
}

}  // namespace

Result<void> OpRegistry::add(const OpDef& def) {
  if (def.name.empty() || def.run == nullptr) {
    return Error{ErrorCode::invalid_parameter, "an op needs a name and a run function"};
  }
  if (def.args.size() > kMaxOpArgs) {
    return Error{ErrorCode::invalid_parameter, "op '" + std::string(def.name) + "' has more than " +
                                                   std::to_string(kMaxOpArgs) + " arguments"};
  }
  if (find(def.name) != nullptr) {
    return Error{ErrorCode::invalid_parameter,
                 "op '" + std::string(def.name) + "' is registered twice"};
  }
  ops_.push_back(&def);
  return {};
}

const OpDef* OpRegistry::find(std::string_view name) const {
  for (const OpDef* def : ops_) {
    if (def->name == name) return def;
  }
  return nullptr;
}

std::string OpRegistry::names() const {
  std::string out;
  for (const OpDef* def : ops_) {
    if (!out.empty()) out += ", ";
    out += def->name;
  }
  return out;
}

std::string OpRegistry::help_text() const {
  std::string out;
  for (const OpDef* def : ops_) {
    const std::string left = "  " + std::string(def->name) + arg_signature(*def);
    out += left + std::string(left.size() < 30 ? 30 - left.size() : 1, ' ') +
           std::string(def->help) + "\n";
    for (const OpArg& arg : def->args) {
      const std::string arg_left = "    " + std::string(arg.name);
      out += arg_left + std::string(arg_left.size() < 30 ? 30 - arg_left.size() : 1, ' ') +
             std::string(arg.help) + " (" + arg_range(arg) + ")\n";
    }
  }
  return out;
}

std::string OpRegistry::markdown() const {
  std::string out = "| op | arguments | what it does |\n|---|---|---|\n";
  for (const OpDef* def : ops_) {
    std::string args;
    for (const OpArg& arg : def->args) {
      if (!args.empty()) args += "; ";
      args +=
          "`" + std::string(arg.name) + "`: " + std::string(arg.help) + " (" + arg_range(arg) + ")";
    }
    out += "| `" + std::string(def->name) + "` | " + (args.empty() ? "none" : args) + " | " +
           std::string(def->help) + " |\n";
  }
  return out;
}

OpRegistry builtin_registry() {
  OpRegistry registry;
  for (const OpDef* def : builtin_ops()) {
    (void)registry.add(*def);  // builtin names are distinct (tested)
  }
  return registry;
}

OpRegistry& default_registry() {
  static OpRegistry registry = builtin_registry();
  return registry;
}

}  // namespace pixpool
