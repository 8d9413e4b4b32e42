#pragma once
// The files the binary serves itself (routes/web.cpp): the web page
// (service/web/), Chart.js from Debian's libjs-chart.js, and the OpenAPI
// document (service/web/openapi.json). The build embeds them
// (service/web/embed.cmake), so the page works offline with no assets
// folder and no CDN.

#include <cstddef>
#include <span>
#include <string_view>

namespace pixpool {

struct WebAsset {
  std::string_view name;          // as served under /assets/, e.g. "app.js"
  std::string_view body;          // the file's bytes
  std::string_view content_type;  // from the extension, with charset for text
  std::string_view etag;          // strong validator: a hash of body, quoted
};

// Every embedded file, sorted by name.
std::span<const WebAsset> web_assets();

// The embedded file called `name`, or nullptr when there is none.
const WebAsset* find_web_asset(std::string_view name);

namespace detail {
// Written by the generated source (embed.cmake).
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  std::size_t size;
};
extern const EmbeddedFile kEmbeddedFiles[];
extern const std::size_t kEmbeddedFileCount;
}  // namespace detail

}  // namespace pixpool
