// The OpenAPI document the server embeds and serves at /openapi.json
// (service/web/openapi.json) against the code it describes: the route table
// both ways, the error codes of core/error.hpp, and the status
// service/http_errors gives each code. tests/web/check_openapi.py checks the
// same document against the OpenAPI 3.1 structure and a running server.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "service/http_errors.hpp"
#include "service/routes/routes.hpp"
#include "service/web_assets.hpp"

using namespace pixpool;
using nlohmann::json;

namespace {

constexpr const char* kMethods[] = {"get",     "put",  "post",  "delete",
                                    "options", "head", "patch", "trace"};

const json& document() {
  static const json doc = [] {
    const WebAsset* asset = find_web_asset("openapi.json");
    REQUIRE(asset != nullptr);
    return json::parse(asset->body);
  }();
  return doc;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// `node` itself, or what its "$ref" (a local JSON pointer, "#/...") points
// to, followed until a node without one.
const json& resolve(const json& node) {
  const json* at = &node;
  for (int hops = 0; at->is_object() && at->contains("$ref"); ++hops) {
    REQUIRE(hops < 16);
    const std::string ref = (*at)["$ref"].get<std::string>();
    REQUIRE_MESSAGE(ref.starts_with("#/"), "not a local reference: " << ref);
    const json::json_pointer pointer(ref.substr(1));
    REQUIRE_MESSAGE(document().contains(pointer), "unresolved reference: " << ref);
    at = &document().at(pointer);
  }
  return *at;
}

// Every "$ref" anywhere in `node`, with where it was found.
void collect_refs(const json& node, const std::string& where,
                  std::vector<std::pair<std::string, std::string>>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) out.emplace_back(where, value.get<std::string>());
      collect_refs(value, where + "/" + key, out);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      collect_refs(node[i], where + "/" + std::to_string(i), out);
    }
  }
}

struct Operation {
  std::string method;  // upper case, as in route_table()
  std::string path;
  const json* node;
};

std::vector<Operation> operations() {
  std::vector<Operation> out;
  for (const auto& [path, item] : document().at("paths").items()) {
    for (const char* method : kMethods) {
      if (item.contains(method)) out.push_back({upper(method), path, &item.at(method)});
    }
  }
  return out;
}

const std::string kErrorSchema = "#/components/schemas/Error";

// The codes an error response names: its JSON schema is
// {"allOf": [{"$ref": Error}, {"properties": {"error": {"properties": {"code":
// {"enum": [...]}}}}}]}. Empty when it has no such shape.
std::vector<std::string> listed_codes(const json& schema) {
  std::vector<std::string> codes;
  if (!schema.contains("allOf") || schema["allOf"].size() != 2) return codes;
  const json& narrowing = schema["allOf"][1];
  const json::json_pointer enum_at("/properties/error/properties/code/enum");
  if (!narrowing.contains(enum_at)) return codes;
  for (const json& code : narrowing.at(enum_at)) codes.push_back(code.get<std::string>());
  return codes;
}

bool uses_error_schema(const json& schema) {
  if (schema.value("$ref", "") == kErrorSchema) return true;
  return schema.contains("allOf") && !schema["allOf"].empty() &&
         schema["allOf"][0].value("$ref", "") == kErrorSchema;
}

// Error statuses whose body is not an Error: the probes answer 503 with their
// own report. Their schema is named here, by "METHOD path status".
const std::set<std::pair<std::string, std::string>> kNotErrorBodies = {
    {"GET /healthz 503", "#/components/schemas/Health"},
    {"GET /readyz 503", "#/components/schemas/Ready"},
};

std::string not_error_schema(const std::string& answer) {
  for (const auto& [which, schema] : kNotErrorBodies) {
    if (which == answer) return schema;
  }
  return "";
}

// The code service/http_errors gives httplib's own answers of `status` (the
// server's error handler fills their bodies), e.g. 414 -> invalid_parameter.
std::string filled_code(int status) {
  httplib::Response res;
  res.status = status;
  fill_error_body(res);
  return json::parse(res.body).at("error").at("code").get<std::string>();
}

}  // namespace

TEST_CASE("openapi: the embedded document is OpenAPI 3.1.0") {
  const json& doc = document();
  CHECK(doc.at("openapi") == "3.1.0");
  CHECK(doc.at("info").at("title") == "pixpool");
  CHECK_FALSE(doc.at("info").at("version").get<std::string>().empty());
  CHECK(doc.at("paths").is_object());
}

TEST_CASE("openapi: every route is documented and every documented operation is a route") {
  std::set<std::pair<std::string, std::string>> routes;
  for (const Route& route : route_table()) {
    routes.emplace(std::string(route.method), std::string(route.label));
  }
  std::set<std::pair<std::string, std::string>> documented;
  for (const Operation& op : operations()) documented.emplace(op.method, op.path);

  std::vector<std::string> undocumented;
  for (const auto& [method, label] : routes) {
    if (!documented.contains({method, label})) undocumented.push_back(method + " " + label);
  }
  std::vector<std::string> not_served;
  for (const auto& [method, path] : documented) {
    if (!routes.contains({method, path})) not_served.push_back(method + " " + path);
  }
  std::string missing;
  for (const auto& m : undocumented) missing += "\n  " + m;
  std::string bogus;
  for (const auto& b : not_served) bogus += "\n  " + b;
  CHECK_MESSAGE(undocumented.empty(), "routes missing from openapi.json:" << missing);
  CHECK_MESSAGE(not_served.empty(), "documented operations that are no route:" << bogus);
  CHECK(documented.size() == routes.size());
}

TEST_CASE("openapi: every reference resolves") {
  std::vector<std::pair<std::string, std::string>> refs;
  collect_refs(document(), "", refs);
  CHECK(refs.size() > 10);
  for (const auto& found : refs) {
    const std::string& ref = found.second;  // (INFO cannot capture structured bindings)
    INFO("$ref " << ref << " at " << found.first);
    REQUIRE(ref.starts_with("#/"));
    CHECK(document().contains(json::json_pointer(ref.substr(1))));
  }
}

TEST_CASE("openapi: the error code enum is core/error.hpp's table, in order") {
  const json& error = resolve(document().at("/components/schemas/Error"_json_pointer));
  const json& detail = resolve(error.at("/properties/error"_json_pointer));
  const json& code = resolve(detail.at("/properties/code"_json_pointer));
  REQUIRE(code.contains("enum"));
  std::vector<std::string> documented;
  for (const json& name : code.at("enum")) documented.push_back(name.get<std::string>());
  std::vector<std::string> table;
  for (const ErrorCode c : kAllErrorCodes) table.emplace_back(code_name(c));
  auto joined = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  CHECK_MESSAGE(documented == table,
                "documented: " << joined(documented) << "\ncore/error.hpp: " << joined(table));
  CHECK(documented.size() == kErrorCodeCount);
}

TEST_CASE("openapi: every error status of every operation answers with the Error schema") {
  int error_responses = 0;
  for (const Operation& op : operations()) {
    const std::string name = op.method + " " + op.path;
    for (const auto& entry : op.node->at("responses").items()) {
      const std::string& status = entry.key();
      const json& response_node = entry.value();
      INFO(name << " " << status);
      REQUIRE(status.size() == 3);
      if (std::atoi(status.c_str()) < 400) continue;
      const json& response = resolve(response_node);
      REQUIRE(response.contains("content"));
      const json& content = response.at("content");
      CHECK(content.size() == 1);
      REQUIRE(content.contains("application/json"));
      const json& schema = content.at("application/json").at("schema");
      if (const std::string own = not_error_schema(name + " " + status); !own.empty()) {
        CHECK(schema.value("$ref", "") == own);
        continue;
      }
      ++error_responses;
      CHECK(uses_error_schema(schema));
      CHECK_MESSAGE(!listed_codes(schema).empty(), "the response names no error codes");
      // Every error answer says which replica answered, as every response does.
      CHECK((response.contains("headers") && response["headers"].contains("X-Pixpool-Replica")));
    }
  }
  CHECK(error_responses > 50);
}

TEST_CASE("openapi: each error status lists only codes http_errors answers with that status") {
  int checked = 0;
  for (const Operation& op : operations()) {
    const std::string name = op.method + " " + op.path;
    for (const auto& [status_text, response_node] : op.node->at("responses").items()) {
      const int status = std::atoi(status_text.c_str());
      if (status < 400 || !not_error_schema(name + " " + status_text).empty()) continue;
      const json& schema =
          resolve(response_node).at("/content/application~1json/schema"_json_pointer);
      for (const std::string& code : listed_codes(schema)) {
        INFO(name << " " << status << " " << code);
        const auto parsed = error_code_from_name(code);
        REQUIRE_MESSAGE(parsed.has_value(), "no such error code");
        // Either the code's own status, or httplib's answer of that status
        // whose body the error handler fills with this code (414, 416).
        CHECK((http_status(*parsed) == status || filled_code(status) == code));
        ++checked;
        // Retryable codes come with Retry-After, documented.
        if (is_retryable(*parsed)) {
          const json& response = resolve(response_node);
          CHECK_MESSAGE(
              (response.contains("headers") && response["headers"].contains("Retry-After")),
              "a retryable code without a documented Retry-After header");
        }
      }
    }
  }
  CHECK(checked > 50);
}
