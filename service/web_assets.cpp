#include "service/web_assets.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace pixpool {
namespace {

std::string_view content_type_of(std::string_view name) {
  struct Type {
    std::string_view extension;
    std::string_view type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
  };
  for (const Type& t : kTypes) {
    if (name.ends_with(t.extension)) return t.type;
  }
  return "application/octet-stream";
}

// FNV-1a, 64 bits: enough to tell two builds' files apart.
std::string etag_of(std::string_view body) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (const char c : body) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(hash));
  return buf;
}

struct Catalog {
  std::vector<std::string> etags;  // owns what assets' etag views
  std::vector<WebAsset> assets;
  Catalog() {
    const std::span files(detail::kEmbeddedFiles, detail::kEmbeddedFileCount);
    etags.reserve(files.size());
    for (const detail::EmbeddedFile& f : files) {
      const std::string_view body(reinterpret_cast<const char*>(f.data), f.size);
      etags.push_back(etag_of(body));
      assets.push_back({f.name, body, content_type_of(f.name), etags.back()});
    }
    std::sort(assets.begin(), assets.end(),
              [](const WebAsset& a, const WebAsset& b) { return a.name < b.name; });
  }
};

const Catalog& catalog() {
  static const Catalog instance;
  return instance;
}

}  // namespace

std::span<const WebAsset> web_assets() {
  return catalog().assets;
}

const WebAsset* find_web_asset(std::string_view name) {
  const auto& assets = catalog().assets;
  const auto it =
      std::lower_bound(assets.begin(), assets.end(), name,
                       [](const WebAsset& a, std::string_view n) { return a.name < n; });
  return it != assets.end() && it->name == name ? &*it : nullptr;
}

}  // namespace pixpool
