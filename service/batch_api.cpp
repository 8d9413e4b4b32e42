#include "service/batch_api.hpp"

#include <cstdio>

#include "pipeline/tar_archive.hpp"
#include "service/http_errors.hpp"

namespace pixpool {
namespace {

Error bad(std::string message) {
  return Error{ErrorCode::invalid_parameter, std::move(message)};
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// Moves JSON body settings into the query, refusing ones given both ways.
Result<void> merge_json_settings(const nlohmann::json& body, QueryParams& query) {
  for (const char* key : {"ops", "backend", "format", "quality", "exact"}) {
    if (!body.contains(key)) continue;
    if (query.contains(key)) {
      return bad(std::string("'") + key + "' is given both in the query and in the JSON body");
    }
    const auto& value = body[key];
    if (value.is_string()) {
      query.emplace(key, value.get<std::string>());
    } else if (value.is_number_integer()) {
      query.emplace(key, std::to_string(value.get<long long>()));
    } else if (value.is_boolean()) {
      query.emplace(key, value.get<bool>() ? "true" : "false");
    } else {
      return bad(std::string("JSON field '") + key + "' must be a string");
    }
  }
  for (const auto& [key, value] : body.items()) {
    if (key != "urls" && key != "ops" && key != "backend" && key != "format" && key != "quality" &&
        key != "exact") {
      return bad("unknown JSON field '" + key +
                 "' (valid: urls, ops, backend, format, quality, exact)");
    }
  }
  return {};
}

// A SAX pass that bounds a JSON body before nlohmann builds it. The DOM costs
// about 70 bytes per nested '[' and 50 per tiny value, so a 64 MiB body of
// "[[[[..." took 2.3 GB and minutes to parse (found fuzzing, docs/security.md).
// A valid batch nests 2 deep (object > "urls" array > strings) and holds at
// most max_items URLs plus the four settings: stop at the first value beyond.
class JsonShape final : public nlohmann::json_sax<nlohmann::json> {
 public:
  static constexpr std::size_t kMaxDepth = 16;  // deeper than a batch needs; keeps messages useful
  static constexpr std::size_t kSettings = 16;  // room for ops/backend/format/quality (and typos)

  explicit JsonShape(std::size_t max_items) : max_values_(max_items + kSettings) {}

  // Why the pass stopped: "" for a syntax error (or none).
  const std::string& refusal() const { return refusal_; }

  bool null() override { return value(); }
  bool boolean(bool /*val*/) override { return value(); }
  bool number_integer(number_integer_t /*val*/) override { return value(); }
  bool number_unsigned(number_unsigned_t /*val*/) override { return value(); }
  bool number_float(number_float_t /*val*/, const string_t& /*s*/) override { return value(); }
  bool string(string_t& /*val*/) override { return value(); }
  bool binary(binary_t& /*val*/) override { return value(); }
  bool key(string_t& /*val*/) override { return value(); }
  bool start_object(std::size_t /*elements*/) override { return open(); }
  bool start_array(std::size_t /*elements*/) override { return open(); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*ex*/) override {
    return false;
  }

 private:
  bool value() {
    if (++values_ <= max_values_) return true;
    refusal_ = "too many items: the JSON body holds more than " +
               std::to_string(max_values_ - kSettings) + " values (see --max-batch-items)";
    return false;
  }
  bool open() {
    if (++depth_ <= kMaxDepth) return value();
    refusal_ = "JSON body nests deeper than " + std::to_string(kMaxDepth) +
               " levels (a batch is {\"urls\":[...]})";
    return false;
  }
  bool close() {
    --depth_;
    return true;
  }

  std::size_t max_values_;
  std::size_t values_ = 0;
  std::size_t depth_ = 0;
  std::string refusal_;
};

}  // namespace

Result<BatchRequest> parse_batch_request(const httplib::Request& req, QueryParams query,
                                         RequestBody body, const Config& config) {
  BatchRequest out;
  auto archive = query.find("archive");
  if (archive != query.end()) {
    if (archive->second != "tar")
      return bad("archive must be 'tar', got '" + archive->second + "'");
    out.archive = true;
    query.erase(archive);
  }
  if (req.get_header_value("Accept").find("application/x-tar") != std::string::npos) {
    out.archive = true;
  }

  const std::string content_type = req.get_header_value("Content-Type");
  if (body.multipart) {
    for (const BodyPart& part : body.parts) {
      if (part.name != "image" && part.name != "url") {
        return bad("unknown multipart field '" + part.name +
                   "' (send 'image' files and/or 'url' fields; ops, backend, format and "
                   "quality go in the query string)");
      }
    }
    // Files first, then URLs, each in the order sent.
    for (BodyPart& part : body.parts) {
      if (part.name == "image") {
        out.inputs.push_back(BatchInput{part.filename, "", std::move(part.content)});
      }
    }
    for (BodyPart& part : body.parts) {
      if (part.name == "url") out.inputs.push_back(BatchInput{"", trim(part.content), ""});
    }
  } else if (content_type.find("application/json") == 0) {
    JsonShape shape(config.batches.max_items);
    if (!nlohmann::json::sax_parse(body.raw, &shape)) {
      return bad(shape.refusal().empty() ? "body is not a JSON object" : shape.refusal());
    }
    const auto json = nlohmann::json::parse(body.raw, nullptr, false);
    if (json.is_discarded() || !json.is_object()) return bad("body is not a JSON object");
    if (!json.contains("urls") || !json["urls"].is_array()) {
      return bad(R"(JSON body needs "urls": ["https://...", ...])");
    }
    for (const auto& url : json["urls"]) {
      if (!url.is_string()) return bad("every entry of \"urls\" must be a string");
      out.inputs.push_back(BatchInput{"", url.get<std::string>(), ""});
    }
    if (auto ok = merge_json_settings(json, query); !ok) return ok.error();
  } else if (!body.raw.empty()) {
    return bad(
        "send multipart/form-data (curl -F image=@a.jpg -F url=https://...) or "
        "application/json {\"urls\":[...]}");
  }
  if (out.inputs.empty()) {
    return bad("no images: send 'image' files and/or 'url' fields (or JSON {\"urls\":[...]})");
  }
  if (out.inputs.size() > config.batches.max_items) {
    return bad("too many items: " + std::to_string(out.inputs.size()) + " (at most " +
               std::to_string(config.batches.max_items) + ", see --max-batch-items)");
  }
  auto params = parse_process_params(query, config.default_backend);
  if (!params) return params.error();
  out.params = std::move(params.value());
  return out;
}

nlohmann::json item_json(const ItemResult& item, std::size_t index) {
  nlohmann::json j = {{"index", index}, {"state", std::string(item_state_name(item.state))}};
  if (!item.name.empty()) j["name"] = item.name;
  if (!item.url.empty()) j["url"] = item.url;
  if (item.state == ItemState::succeeded) {
    j["status"] = 200;
    j["bytes"] = item.output_bytes;
    j["input_bytes"] = item.input_bytes;
    j["width"] = item.width;
    j["height"] = item.height;
    j["format"] = std::string(format_name(item.format));
    if (!item.result_id.empty()) {
      j["id"] = item.result_id;
      j["result"] = "/v1/results/" + item.result_id;
    }
    if (!item.replica.empty()) j["replica"] = item.replica;
  } else if (item.state == ItemState::failed && item.error) {
    j["status"] = http_status(item.error->code);
    j["error"] = {{"code", std::string(code_name(item.error->code))},
                  {"message", item.error->message}};
    if (!item.replica.empty()) j["replica"] = item.replica;
  }
  if (item.state == ItemState::succeeded || item.state == ItemState::failed) {
    if (item.state == ItemState::succeeded) j["decode_scale"] = item.times.decode_scale;
    j["timings_ms"] = {{"download", item.download_ms},   {"queue", item.times.queue_ms},
                       {"decode", item.times.decode_ms}, {"filter", item.times.filter_ms},
                       {"encode", item.times.encode_ms}, {"total", item.total_ms}};
  }
  return j;
}

nlohmann::json summary_json(const BatchSummary& s) {
  return {{"state", std::string(batch_state_name(s.state))},
          {"total", s.total},
          {"done", s.finished},
          {"succeeded", s.succeeded},
          {"failed", s.failed},
          {"cancelled", s.cancelled},
          {"elapsed_s", s.elapsed_s},
          {"images_per_s", s.images_per_s},
          {"bytes_in", s.bytes_in},
          {"bytes_out", s.bytes_out},
          {"megabytes_per_s", s.megabytes_per_s}};
}

nlohmann::json batch_json(const JobSnapshot& job) {
  const BatchSummary& summary = job.summary;
  nlohmann::json items = nlohmann::json::array();
  const auto& all = job.items;
  for (std::size_t i = 0; i < all.size(); ++i) items.push_back(item_json(all[i], i));
  const std::string self = "/v1/jobs/" + job.id;
  return {
      {"id", job.id},
      {"state", std::string(batch_state_name(summary.state))},
      {"backend", job.backend},
      {"totals", summary_json(summary)},
      {"items", items},
      {"links", {{"self", self}, {"events", self + "/events"}, {"archive", self + "/archive"}}}};
}

Result<std::string> batch_archive(const JobSnapshot& job, JobStore& store) {
  std::vector<TarEntry> entries;
  nlohmann::json manifest = batch_json(job);
  const auto& all = job.items;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const ItemResult& item = all[i];
    if (item.state != ItemState::succeeded) continue;
    std::shared_ptr<const StoredResult> stored;
    if (!item.result_id.empty()) {
      auto fetched = store.result(item.result_id);
      if (!fetched) return fetched.error();
      stored = std::move(fetched.value());
    }
    if (!stored) {
      manifest["items"][i]["archived"] = false;  // evicted or expired from the store
      continue;
    }
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "%04zu-", i + 1);
    const std::string file = prefix + stored->name;
    manifest["items"][i]["file"] = file;
    entries.push_back(TarEntry{file, stored->bytes});
  }
  entries.insert(
      entries.begin(),
      TarEntry{"manifest.json",
               manifest.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"});
  return make_tar(entries);
}

}  // namespace pixpool
