#pragma once
// Which network addresses a download may connect to (the SSRF guard).

#include <sys/socket.h>

#include <string>

namespace pixpool {

// True for addresses a download must not reach by default: loopback
// (127.0.0.0/8, ::1), link-local (169.254.0.0/16 incl. cloud metadata,
// fe80::/10), RFC 1918 (10/8, 172.16/12, 192.168/16), CGNAT 100.64.0.0/10,
// unique-local fc00::/7, IPv4-mapped (::ffff:0:0/96) and IPv4-compatible
// (::/96) IPv6 whose embedded IPv4 is forbidden (or any, for compatible),
// multicast (224/4, ff00::/8), unspecified (0.0.0.0/8, ::), broadcast
// 255.255.255.255, and other families than AF_INET/AF_INET6.
// Also refused: NAT64 64:ff9b::/96 (by its embedded IPv4) and site-local fec0::/10.
bool is_forbidden_address(const sockaddr* address);

// Why an address is forbidden ("loopback", "link-local", ...), or nullptr
// when it is allowed; for error messages.
const char* forbidden_address_reason(const sockaddr* address);

// Human-readable address ("169.254.169.254", "::1") for error messages.
std::string address_to_string(const sockaddr* address);

}  // namespace pixpool
