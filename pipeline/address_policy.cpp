#include "pipeline/address_policy.hpp"

// STUB: to be implemented (issue 4, downloads).
namespace pixpool {
bool is_forbidden_address(const sockaddr*) { return true; }
std::string address_to_string(const sockaddr*) { return "?"; }
}  // namespace pixpool
