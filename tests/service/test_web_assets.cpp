// The files the binary serves for the web page: all there, typed right,
// each reference between them resolvable, and Chart.js the Debian one.
#include <doctest/doctest.h>

#include <regex>
#include <set>
#include <string>

#include "service/web_assets.hpp"

using namespace pixpool;

namespace {

std::string body_of(std::string_view name) {
  const WebAsset* asset = find_web_asset(name);
  REQUIRE_MESSAGE(asset != nullptr, "no embedded asset " << name);
  return std::string(asset->body);
}

// Every match of `pattern`'s first group in `text`.
std::set<std::string> matches(const std::string& text, const std::regex& pattern) {
  std::set<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), pattern), end; it != end; ++it) {
    out.insert((*it)[1].str());
  }
  return out;
}

}  // namespace

TEST_CASE("web assets: the page, its modules, Chart.js and the OpenAPI document are embedded") {
  for (const char* name :
       {"index.html", "style.css", "app.js", "api.js", "ops.js", "playground.js", "race.js",
        "live.js", "tar.js", "test_images.js", "icon.svg", "chart.min.js", "openapi.json"}) {
    const WebAsset* asset = find_web_asset(name);
    REQUIRE_MESSAGE(asset != nullptr, name);
    CHECK(!asset->body.empty());
  }
  CHECK(find_web_asset("nope.js") == nullptr);
  CHECK(find_web_asset("") == nullptr);
  // Debian's libjs-chart.js, not a copy of our own
  CHECK(body_of("chart.min.js").starts_with("/*!\n * Chart.js v3."));
}

TEST_CASE("web assets: content types by extension, distinct quoted ETags, sorted by name") {
  CHECK(find_web_asset("index.html")->content_type == "text/html; charset=utf-8");
  CHECK(find_web_asset("app.js")->content_type == "text/javascript; charset=utf-8");
  CHECK(find_web_asset("style.css")->content_type == "text/css; charset=utf-8");
  CHECK(find_web_asset("openapi.json")->content_type == "application/json");
  CHECK(find_web_asset("icon.svg")->content_type == "image/svg+xml");
  std::set<std::string_view> etags;
  std::string_view previous;
  const std::regex served(R"([A-Za-z0-9_.-]+)");  // the /assets/{name} route's pattern
  for (const WebAsset& asset : web_assets()) {
    CHECK(asset.name > previous);
    previous = asset.name;
    CHECK_MESSAGE(std::regex_match(std::string(asset.name), served), asset.name);
    CHECK(asset.etag.size() == 18);
    CHECK(asset.etag.front() == '"');
    CHECK(asset.etag.back() == '"');
    etags.insert(asset.etag);
  }
  CHECK(etags.size() == web_assets().size());
}

TEST_CASE("web assets: every /assets/ reference of the page and every module import resolves") {
  const std::string page = body_of("index.html");
  const auto referenced = matches(page, std::regex(R"re((?:src|href)="/assets/([^"]+)")re"));
  CHECK(referenced.size() >= 4);
  for (const auto& name : referenced) CHECK_MESSAGE(find_web_asset(name) != nullptr, name);
  const std::regex import_from(R"re(from "\./([^"]+)")re");
  for (const WebAsset& asset : web_assets()) {
    if (!asset.name.ends_with(".js") || asset.name == "chart.min.js") continue;
    for (const auto& name : matches(std::string(asset.body), import_from)) {
      CHECK_MESSAGE(find_web_asset(name) != nullptr, asset.name << " imports " << name);
    }
  }
  // No inline script or style: the page's Content-Security-Policy forbids them.
  CHECK(page.find("<script>") == std::string::npos);
  CHECK(page.find("style=") == std::string::npos);
  CHECK(page.find("<style") == std::string::npos);
  CHECK(matches(page, std::regex(R"re(\s(on[a-z]+)=)re")).empty());  // onclick=, onload=...
}
