#pragma once
// Small text helpers more than one layer needs: numbers in the form users
// write them, and "did you mean" for mistyped names.

#include <cstddef>
#include <string>
#include <string_view>

namespace pixpool {

// The shortest decimal that reads back to the same double: "5", "2.5", "0.1".
std::string shortest_decimal(double value);

// Edit distance (insertions, deletions, substitutions), ignoring ASCII case.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace pixpool
