// Fuzz target: the op-chain parser (`ops=` text), against the production
// registry and against one that adds an op with kMaxOpArgs arguments of both
// types, required and defaulted (the built-in ops take at most one). Beyond
// not crashing, every chain it accepts must keep the declared ranges and
// survive the canonical round trip the worker wire relies on:
// parse_ops(format_ops(c)) == c.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filters/op_chain.hpp"

namespace {

using pixpool::ArgType;
using pixpool::OpArg;

pixpool::Result<void> no_run(std::span<const double>, const cv::Mat&, cv::Mat&,
                             const pixpool::StripRunner&) {
  return {};
}

const pixpool::OpDef kWideOp{
    .name = "mix",
    .help = "fuzzing only: four arguments",
    .args =
        {OpArg{.name = "a", .type = ArgType::integer, .min = -3, .max = 1000},
         OpArg{.name = "b", .type = ArgType::number, .min = 0.5, .max = 2.5, .default_value = 1.0},
         OpArg{.name = "c", .type = ArgType::number, .min = -1e300, .max = 1e300},
         OpArg{.name = "d", .type = ArgType::integer, .min = 0, .max = 65536, .default_value = 7}},
    .run = no_run};

const pixpool::OpRegistry& wide_registry() {
  static const pixpool::OpRegistry registry = [] {
    pixpool::OpRegistry r = pixpool::builtin_registry();
    if (!r.add(kWideOp)) std::abort();
    return r;
  }();
  return registry;
}

void check(std::string_view text, const pixpool::OpRegistry& registry) {
  auto chain = pixpool::parse_ops(text, registry);
  if (!chain) {
    if (chain.error().code != pixpool::ErrorCode::invalid_ops) std::abort();
    return;
  }
  if (chain->empty() || chain->size() > pixpool::kMaxOps) std::abort();
  for (const pixpool::Op& op : *chain) {
    if (op.def == nullptr || op.args.size() != op.def->args.size()) std::abort();
    for (std::size_t i = 0; i < op.args.size(); ++i) {
      const OpArg& arg = op.def->args[i];
      if (!(op.args[i] >= arg.min && op.args[i] <= arg.max)) std::abort();
    }
  }
  const std::string canonical = pixpool::format_ops(*chain);
  auto again = pixpool::parse_ops(canonical, registry);
  if (!again || *again != *chain) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(text, pixpool::default_registry());
  check(text, wide_registry());
  return 0;
}
