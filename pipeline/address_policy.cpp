#include "pipeline/address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace pixpool {

namespace {

// True when the top `bits` bits of `a` equal those of `net`.
bool in_v4(std::uint32_t a, std::uint32_t net, int bits) {
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (a & mask) == (net & mask);
}

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// `a` in host byte order.
const char* v4_reason(std::uint32_t a) {
  if (in_v4(a, v4(0, 0, 0, 0), 8)) return "unspecified";  // 0.0.0.0/8 "this network"
  if (in_v4(a, v4(127, 0, 0, 0), 8)) return "loopback";
  if (in_v4(a, v4(169, 254, 0, 0), 16)) return "link-local";  // incl. cloud metadata
  if (in_v4(a, v4(10, 0, 0, 0), 8)) return "private";
  if (in_v4(a, v4(172, 16, 0, 0), 12)) return "private";
  if (in_v4(a, v4(192, 168, 0, 0), 16)) return "private";
  if (in_v4(a, v4(100, 64, 0, 0), 10)) return "carrier-grade NAT";
  if (in_v4(a, v4(224, 0, 0, 0), 4)) return "multicast";
  if (a == v4(255, 255, 255, 255)) return "broadcast";
  return nullptr;
}

std::uint32_t embedded_v4(const in6_addr& a) {
  return (std::uint32_t{a.s6_addr[12]} << 24) | (std::uint32_t{a.s6_addr[13]} << 16) |
         (std::uint32_t{a.s6_addr[14]} << 8) | std::uint32_t{a.s6_addr[15]};
}

bool zero_bytes(const in6_addr& a, int from, int to) {
  for (int i = from; i < to; ++i) {
    if (a.s6_addr[i] != 0) return false;
  }
  return true;
}

const char* v6_reason(const in6_addr& a) {
  const std::uint8_t* b = a.s6_addr;
  if (zero_bytes(a, 0, 16)) return "unspecified";             // ::
  if (zero_bytes(a, 0, 15) && b[15] == 1) return "loopback";  // ::1
  // ::ffff:0:0/96, IPv4-mapped: the kernel connects to the embedded IPv4.
  if (zero_bytes(a, 0, 10) && b[10] == 0xff && b[11] == 0xff) return v4_reason(embedded_v4(a));
  // 64:ff9b::/96, NAT64 well-known prefix: a NAT64 gateway reaches the embedded IPv4.
  static constexpr std::uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(b, kNat64, sizeof kNat64) == 0) return v4_reason(embedded_v4(a));
  // ::/96, IPv4-compatible (deprecated): never legitimate, refuse all.
  if (zero_bytes(a, 0, 12)) return "IPv4-compatible";
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "site-local";  // fec0::/10, deprecated
  if ((b[0] & 0xfe) == 0xfc) return "unique-local";                // fc00::/7
  if (b[0] == 0xff) return "multicast";                            // ff00::/8
  return nullptr;
}

}  // namespace

const char* forbidden_address_reason(const sockaddr* address) {
  if (address == nullptr) return "no address";
  if (address->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);  // copy: `address` may be under-aligned
    return v4_reason(ntohl(in.sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    return v6_reason(in6.sin6_addr);
  }
  return "not an IP address";  // AF_UNIX and friends
}

bool is_forbidden_address(const sockaddr* address) {
  return forbidden_address_reason(address) != nullptr;
}

std::string address_to_string(const sockaddr* address) {
  if (address == nullptr) return "(none)";
  char text[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    if (inet_ntop(AF_INET, &in.sin_addr, text, sizeof text) != nullptr) return text;
  } else if (address->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    if (inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text) != nullptr) return text;
  }
  return "(address family " + std::to_string(address->sa_family) + ")";
}

}  // namespace pixpool
