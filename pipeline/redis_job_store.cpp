#include "pipeline/redis_job_store.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "pipeline/image_run.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::string_view kQueue = "pixpool:queue";
constexpr std::string_view kGroup = "pixpool";
constexpr std::string_view kQueuedBytes = "pixpool:queued_bytes";
// How long a consumer's read blocks before it looks again (reclaims, stop).
constexpr std::chrono::milliseconds kPullBlock{1000};
// A job is sent to Redis in chunks of at most this many items and bytes
// (one MULTI/EXEC each), so its first items run while the rest is sent.
constexpr std::size_t kEnqueueChunkItems = 16;
constexpr std::size_t kEnqueueChunkBytes = std::size_t{4} << 20;
// The longest a progress() read blocks.
constexpr std::chrono::milliseconds kMaxProgressBlock{2000};
// Consumers (replica names) silent this long with nothing pending are
// removed from the group; checked this often.
constexpr std::chrono::minutes kConsumerForgetAfter{10};
constexpr std::chrono::minutes kConsumerCleanupEvery{1};
// Job keys of a job that never finishes (every replica gone for good) still
// expire: this long after the results TTL.
constexpr std::chrono::hours kUnfinishedJobGrace{24};

std::string job_key(std::string_view id) {
  return "pixpool:job:" + std::string(id);
}
std::string result_key(std::string_view id) {
  return "pixpool:result:" + std::string(id);
}

// Shared by the scripts below: records item `i` of job key `J` as finished
// in `state` with `record`, once. Returns 1 when recorded, 0 when it already
// was, -1 when the job is gone (expired).
constexpr std::string_view kFinishFunction = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function finish(J, i, state, record, bytes_in, bytes_out, ttl_ms)
  local S = J .. ':states'
  local cur = redis.call('HGET', S, i)
  if not cur then return -1 end
  if cur == 'succeeded' or cur == 'failed' or cur == 'cancelled' then return 0 end
  redis.call('HSET', S, i, state)
  redis.call('HSET', J .. ':items', i, record)
  local input = J .. ':input:' .. i
  local size = redis.call('STRLEN', input)
  if size > 0 then
    redis.call('DECRBY', 'pixpool:queued_bytes', size)
    redis.call('DEL', input)
  end
  redis.call('HINCRBY', J, state, 1)
  local finished = redis.call('HINCRBY', J, 'finished', 1)
  if state == 'succeeded' then
    redis.call('HINCRBY', J, 'bytes_in', bytes_in)
    redis.call('HINCRBY', J, 'bytes_out', bytes_out)
  end
  local events = J .. ':events'
  redis.call('XADD', events, '*', 'index', i, 'state', state, 'record', record)
  if finished == tonumber(redis.call('HGET', J, 'total')) then
    redis.call('HSET', J, 'ended_ms', now_ms())
    redis.call('XADD', events, '*', 'done', '1')
    for _, k in ipairs({J, S, J .. ':items', events}) do redis.call('PEXPIRE', k, ttl_ms) end
  else
    redis.call('PEXPIRE', events, redis.call('PTTL', J))
  end
  return 1
end
)lua";

// One chunk of a job, run in MULTI/EXEC after the SETs of its inputs (plain
// commands: pushing megabytes through Lua arguments costs copies). KEYS:
// job, queue, queued_bytes. ARGV: id, budget, keep_ms, chunk bytes, backend,
// params, total, first index, count, then (first chunk only) every item's
// record. Creates the job with its first chunk; reserves the chunk's input
// bytes; queues its items. Returns {1, queued} or {0, queued} when the
// chunk does not fit the budget (nothing changed then).
const RedisScript kEnqueue{"enqueue", R"lua(
local J = KEYS[1]
local bytes = tonumber(ARGV[4])
local queued = tonumber(redis.call('GET', KEYS[3]) or '0')
if bytes > 0 and queued + bytes > tonumber(ARGV[2]) then return {0, queued} end
redis.call('INCRBY', KEYS[3], bytes)
local n = tonumber(ARGV[7])
local first = tonumber(ARGV[8])
if first == 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', J, 'backend', ARGV[5], 'params', ARGV[6], 'total', n, 'created_ms', now,
             'finished', 0, 'succeeded', 0, 'failed', 0, 'cancelled', 0, 'bytes_in', 0,
             'bytes_out', 0, 'cancel', 0)
  for i = 0, n - 1 do
    redis.call('HSET', J .. ':states', i, 'pending')
    redis.call('HSET', J .. ':items', i, ARGV[10 + i])
  end
  for _, k in ipairs({J, J .. ':states', J .. ':items'}) do redis.call('PEXPIRE', k, ARGV[3]) end
end
for i = first, first + tonumber(ARGV[9]) - 1 do
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[1], 'item', i)
end
return {1, queued + bytes}
)lua"};

// Before running an item. KEYS: job, queue. ARGV: item, entry id, group,
// ttl_ms. Returns {'run', backend, params, record} or {'skip'} (the entry is
// acknowledged: finished, cancelled now, or the job is gone). The input is
// read by a GET sent with it (through Lua it would be copied twice more).
const RedisScript kBegin{"begin", std::string(kFinishFunction) + R"lua(
local J, i = KEYS[1], ARGV[1]
local function ack()
  redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
local cur = redis.call('HGET', J .. ':states', i)
if not cur or cur == 'succeeded' or cur == 'failed' or cur == 'cancelled' then
  ack()
  return {'skip'}
end
if cur == 'pending' and redis.call('HGET', J, 'cancel') == '1' then
  finish(J, i, 'cancelled', redis.call('HGET', J .. ':items', i), 0, 0, ARGV[4])
  ack()
  return {'skip'}
end
redis.call('HSET', J .. ':states', i, 'running')
return {'run', redis.call('HGET', J, 'backend'), redis.call('HGET', J, 'params'),
        redis.call('HGET', J .. ':items', i)}
)lua"};

// After running an item, in MULTI/EXEC after the plain commands that store
// a succeeded item's result (its result id is fixed at enqueue and pixel
// work is deterministic, so a rerun writes the same bytes). KEYS: job,
// queue. ARGV: item, entry id, group, state, record, bytes_in, bytes_out,
// ttl_ms. Returns what finish() returned; the entry is acknowledged either
// way.
const RedisScript kRecord{"record", std::string(kFinishFunction) + R"lua(
local recorded = finish(KEYS[1], ARGV[1], ARGV[4], ARGV[5], tonumber(ARGV[6]),
                        tonumber(ARGV[7]), ARGV[8])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
return recorded
)lua"};

// KEYS: job. ARGV: ttl_ms. Returns how many items it cancelled, -1: no job.
const RedisScript kCancel{"cancel", std::string(kFinishFunction) + R"lua(
local J = KEYS[1]
if redis.call('EXISTS', J) == 0 then return -1 end
redis.call('HSET', J, 'cancel', 1)
local n = 0
local states = redis.call('HGETALL', J .. ':states')
for k = 1, #states, 2 do
  if states[k + 1] == 'pending' then
    n = n + finish(J, states[k], 'cancelled', redis.call('HGET', J .. ':items', states[k]), 0, 0,
                   ARGV[1])
  end
end
return n
)lua"};

std::optional<ItemState> state_from_name(std::string_view name) {
  for (ItemState s : {ItemState::pending, ItemState::running, ItemState::succeeded,
                      ItemState::failed, ItemState::cancelled}) {
    if (item_state_name(s) == name) return s;
  }
  return std::nullopt;
}

// An item's record: everything of ItemResult but its state (kept apart, so
// scripts never parse JSON). `result_id` is chosen at enqueue time, so a
// rerun of the item writes the same result key.
std::string record_of(const ItemResult& item) {
  json j = {{"name", item.name}, {"url", item.url}, {"result_id", item.result_id}};
  if (!item.replica.empty()) j["replica"] = item.replica;
  if (item.error) {
    j["error"] = {{"code", std::string(code_name(item.error->code))},
                  {"message", item.error->message}};
  }
  // While pending: the upload's size (0 for URLs and empty uploads), so a
  // missing input key can be told from an empty upload.
  j["input_bytes"] = item.input_bytes;
  if (item.state == ItemState::succeeded || item.state == ItemState::failed) {
    j["output_bytes"] = item.output_bytes;
    j["width"] = item.width;
    j["height"] = item.height;
    j["format"] = std::string(format_name(item.format));
    j["download_ms"] = item.download_ms;
    j["times"] = {item.times.queue_ms, item.times.decode_ms, item.times.filter_ms,
                  item.times.encode_ms};
    j["total_ms"] = item.total_ms;
    j["decode_scale"] = item.times.decode_scale;
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ItemResult item_of(std::string_view record, std::string_view state) {
  ItemResult item;
  item.state = state_from_name(state).value_or(ItemState::pending);
  const json j = json::parse(record, nullptr, false);
  if (!j.is_object()) return item;
  item.name = j.value("name", "");
  item.url = j.value("url", "");
  item.result_id = j.value("result_id", "");
  item.replica = j.value("replica", "");
  if (j.contains("error") && j["error"].is_object()) {
    const auto code = error_code_from_name(j["error"].value("code", ""));
    item.error = Error{code.value_or(ErrorCode::internal), j["error"].value("message", "")};
  }
  // (result_id is set from enqueue on; item_json shows it once succeeded.)
  item.input_bytes = j.value("input_bytes", std::size_t{0});
  item.output_bytes = j.value("output_bytes", std::size_t{0});
  item.width = j.value("width", 0);
  item.height = j.value("height", 0);
  if (auto f = parse_output_format(j.value("format", "png"))) item.format = *f;
  item.download_ms = j.value("download_ms", 0.0);
  if (j.contains("times") && j["times"].is_array() && j["times"].size() == 4) {
    item.times = StageTimes{j["times"][0].get<double>(), j["times"][1].get<double>(),
                            j["times"][2].get<double>(), j["times"][3].get<double>()};
  }
  item.total_ms = j.value("total_ms", 0.0);
  if (const auto scale = j.find("decode_scale"); scale != j.end() && scale->is_number_integer()) {
    item.times.decode_scale = scale->get<int>();
  }
  return item;
}

std::string params_of(const JobParams& p) {
  json j = {{"ops", format_ops(p.ops)},
            {"quality", p.quality},
            {"max_pixels", p.max_pixels},
            {"exact", p.exact}};
  if (p.format) j["format"] = std::string(format_name(*p.format));
  return j.dump();
}

Result<JobParams> job_params_of(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Error{ErrorCode::internal, "unreadable job parameters in the store"};
  JobParams p;
  // format_ops of an empty chain is "": no ops, as given.
  if (const std::string ops_text = j.value("ops", std::string(kDefaultOps)); !ops_text.empty()) {
    auto ops = parse_ops(ops_text);
    if (!ops) return ops.error();
    p.ops = std::move(ops.value());
  }
  p.quality = j.value("quality", kDefaultQuality);
  p.max_pixels = j.value("max_pixels", kDefaultMaxPixels);
  p.exact = j.value("exact", false);
  if (j.contains("format")) p.format = parse_output_format(j.value("format", ""));
  return p;
}

// hash[field], or `otherwise` when absent.
std::string field_of(const std::map<std::string, std::string>& hash, const std::string& field,
                     const std::string& otherwise = "") {
  const auto it = hash.find(field);
  return it == hash.end() ? otherwise : it->second;
}

long long number(const std::map<std::string, std::string>& hash, const std::string& field) {
  const auto it = hash.find(field);
  if (it == hash.end()) return 0;
  long long n = 0;
  std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
  return n;
}

std::map<std::string, std::string> hash_of(const RedisValue& reply) {
  std::map<std::string, std::string> out;
  for (std::size_t k = 0; k + 1 < reply.elements.size(); k += 2) {
    out[reply.elements[k].str] = reply.elements[k + 1].str;
  }
  return out;
}

long long redis_now_ms(const RedisValue& time_reply) {
  const long long s = std::atoll(time_reply.at(0).str.c_str());
  const long long us = std::atoll(time_reply.at(1).str.c_str());
  return s * 1000 + us / 1000;
}

// The entry {id, [field, value, ...]} of a stream reply.
struct StreamEntry {
  std::string id;
  std::map<std::string, std::string> fields;
};

std::vector<StreamEntry> entries_of(const RedisValue& list) {
  std::vector<StreamEntry> out;
  for (const RedisValue& e : list.elements) {
    if (e.at(0).type != RedisValue::Type::string) continue;  // deleted meanwhile
    out.push_back({e.at(0).str, hash_of(e.at(1))});
  }
  return out;
}

}  // namespace

struct RedisJobStore::State {
  RedisJobStoreOptions options;
  const BackendSet& backends;
  Downloader& downloader;
  Metrics& metrics;
  RedisClient redis;

  std::atomic<bool> stopping{false};  // take no more items (shutdown began)
  std::atomic<bool> closed{false};    // consumers are gone: the heartbeat ends
  std::mutex mutex;                   // guards in_progress
  std::condition_variable wake;
  std::set<std::string> in_progress;  // queue entry ids this replica runs
  std::vector<std::thread> consumers;
  std::thread heartbeat;

  std::atomic<std::uint64_t> claimed{0};
  std::atomic<std::uint64_t> reclaimed{0};
  std::atomic<std::uint64_t> duplicates{0};

  State(RedisJobStoreOptions o, const BackendSet& b, Downloader& d, Metrics& m)
      : options(std::move(o)),
        backends(b),
        downloader(d),
        metrics(m),
        redis(options.endpoint, options.client) {}

  std::string ttl_ms() const {
    return std::to_string(std::chrono::milliseconds(options.results_ttl).count());
  }
  Error store_error(const std::string& what) const {
    return Error{ErrorCode::store_unavailable,
                 "job store " + options.endpoint.display() + ": " + what};
  }

  Result<std::optional<JobSnapshot>> snapshot(const std::string& id);
  // Sends items first..first+count-1 of job `id` (inputs SET, then the
  // enqueue script) in one MULTI/EXEC. Returns -1 when queued, or the bytes
  // already queued when the chunk did not fit the budget (its inputs are
  // deleted again). Errors: store_unavailable.
  Result<long long> enqueue_chunk(const std::string& j, const std::string& id,
                                  const std::vector<BatchInput>& inputs,
                                  const std::vector<std::string>& records, std::size_t first,
                                  std::size_t count, std::size_t chunk_bytes,
                                  const std::string& keep, const std::string& budget,
                                  const std::string& backend, const std::string& params,
                                  const std::string& total);
  Result<void> ensure_group();
  // An entry idle longer than reclaim_after, scanning the group's pending
  // list from `cursor` (XAUTOCLAIM looks at a bounded number of entries per
  // call, so the scan goes on where the last call stopped; "0-0" = start).
  std::optional<StreamEntry> reclaim_entry(std::string& cursor);
  // A queue entry to run, or nullopt after a block with nothing (or an
  // error, after pausing). Looks for reclaimable entries first when
  // next_reclaim has passed (and moves it on).
  std::optional<StreamEntry> next_entry(Clock::time_point& next_reclaim, std::string& cursor);
  void consume_loop();
  void run_entry(const StreamEntry& entry);
  void forget_departed_consumers();
  void heartbeat_loop();
  // Sleeps up to `d`, less once `until` is set (stopping or closed).
  void pause(std::chrono::milliseconds d, const std::atomic<bool>& until) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, d, [&] { return until.load(); });
  }
};

Result<void> RedisJobStore::State::ensure_group() {
  // From the start of the stream, so items enqueued before the group existed
  // (or before a Redis restart lost it) still run. BUSYGROUP: it exists.
  auto reply = redis.command({"XGROUP", "CREATE", kQueue, kGroup, "0", "MKSTREAM"});
  if (!reply) return reply.error();
  if (reply->is_error() && reply->str.rfind("BUSYGROUP", 0) != 0) {
    return store_error("cannot create the consumer group: " + reply->str);
  }
  return {};
}

Result<long long> RedisJobStore::State::enqueue_chunk(
    const std::string& j, const std::string& id, const std::vector<BatchInput>& inputs,
    const std::vector<std::string>& records, std::size_t first, std::size_t count,
    std::size_t chunk_bytes, const std::string& keep, const std::string& budget,
    const std::string& backend, const std::string& params, const std::string& total) {
  std::vector<std::string> input_keys;
  for (std::size_t i = first; i < first + count; ++i) {
    if (!inputs[i].bytes.empty()) input_keys.push_back(j + ":input:" + std::to_string(i));
  }
  const std::string bytes = std::to_string(chunk_bytes);
  const std::string from = std::to_string(first);
  const std::string how_many = std::to_string(count);
  std::vector<std::vector<std::string_view>> sets;
  std::size_t k = 0;
  for (std::size_t i = first; i < first + count; ++i) {
    if (inputs[i].bytes.empty()) continue;
    sets.push_back({"SET", input_keys[k++], inputs[i].bytes, "PX", keep});
  }
  std::vector<std::string_view> args{id,     budget, keep, bytes,   backend,
                                     params, total,  from, how_many};
  if (first == 0) args.insert(args.end(), records.begin(), records.end());
  auto replies = redis.eval_with(kEnqueue, {j, kQueue, kQueuedBytes}, args, sets, {}, true);
  if (!replies) return replies.error();
  const RedisValue& result = (*replies)[sets.size()];
  if (result.is_error()) return store_error("enqueue failed: " + result.str);
  if (result.at(0).integer == 1) return -1;
  if (!input_keys.empty()) {  // did not fit: its inputs go again
    std::vector<std::string_view> del{"DEL"};
    del.insert(del.end(), input_keys.begin(), input_keys.end());
    (void)redis.command(del);
  }
  return result.at(1).integer;
}

Result<std::optional<JobSnapshot>> RedisJobStore::State::snapshot(const std::string& id) {
  const std::string j = job_key(id);
  const std::string s = j + ":states";
  const std::string items = j + ":items";
  auto replies = redis.pipeline({{"HGETALL", j}, {"HGETALL", s}, {"HGETALL", items}, {"TIME"}});
  if (!replies) return replies.error();
  for (const RedisValue& r : *replies) {
    if (r.is_error()) return store_error(r.str);
  }
  const auto job = hash_of((*replies)[0]);
  if (job.empty()) return std::optional<JobSnapshot>{};
  const auto states = hash_of((*replies)[1]);
  const auto records = hash_of((*replies)[2]);
  JobSnapshot out;
  out.id = id;
  out.backend = field_of(job, "backend");
  const auto total = static_cast<std::size_t>(std::max<long long>(0, number(job, "total")));
  out.items.resize(total);
  for (std::size_t i = 0; i < total; ++i) {
    const std::string key = std::to_string(i);
    const auto st = states.find(key);
    const auto rec = records.find(key);
    out.items[i] = item_of(rec == records.end() ? "{}" : rec->second,
                           st == states.end() ? "pending" : st->second);
  }
  BatchSummary& sum = out.summary;
  sum.total = total;
  sum.succeeded = static_cast<std::size_t>(number(job, "succeeded"));
  sum.failed = static_cast<std::size_t>(number(job, "failed"));
  sum.cancelled = static_cast<std::size_t>(number(job, "cancelled"));
  sum.finished = static_cast<std::size_t>(number(job, "finished"));
  sum.bytes_in = static_cast<std::size_t>(number(job, "bytes_in"));
  sum.bytes_out = static_cast<std::size_t>(number(job, "bytes_out"));
  const long long created = number(job, "created_ms");
  const long long ended = number(job, "ended_ms");
  const long long now = ended > 0 ? ended : redis_now_ms((*replies)[3]);
  sum.elapsed_s = std::max(0.0, static_cast<double>(now - created) / 1000.0);
  if (sum.elapsed_s > 0) {
    sum.images_per_s = static_cast<double>(sum.succeeded) / sum.elapsed_s;
    sum.megabytes_per_s = static_cast<double>(sum.bytes_in) / 1e6 / sum.elapsed_s;
  }
  if (sum.finished >= sum.total) {
    sum.state =
        number(job, "cancel") == 1 && sum.cancelled > 0 ? BatchState::cancelled : BatchState::done;
  }
  return std::optional<JobSnapshot>{std::move(out)};
}

std::optional<StreamEntry> RedisJobStore::State::reclaim_entry(std::string& cursor) {
  const std::string idle = std::to_string(options.reclaim_after.count());
  auto stolen =
      redis.command({"XAUTOCLAIM", kQueue, kGroup, options.replica, idle, cursor, "COUNT", "1"});
  if (!stolen || stolen->is_error()) return std::nullopt;  // the read after says why
  cursor = stolen->at(0).type == RedisValue::Type::string ? stolen->at(0).str : "0-0";
  auto got = entries_of(stolen->at(1));
  if (got.empty()) return std::nullopt;
  ++reclaimed;
  std::fprintf(stderr, "pixpool: reclaimed queue entry %s (job %s item %s) from a silent replica\n",
               got.front().id.c_str(), got.front().fields["job"].c_str(),
               got.front().fields["item"].c_str());
  return got.front();
}

std::optional<StreamEntry> RedisJobStore::State::next_entry(Clock::time_point& next_reclaim,
                                                            std::string& cursor) {
  const std::string& me = options.replica;
  // First an item a dead replica left behind (looked for now and then, not
  // before every item: it costs a round trip), then a new one.
  if (Clock::now() >= next_reclaim) {
    next_reclaim = Clock::now() + std::min(options.reclaim_after / 2, kPullBlock);
    // The whole pending list, a step at a time: go on at once while the
    // scan has not wrapped around.
    auto stolen = reclaim_entry(cursor);
    if (cursor != "0-0") next_reclaim = Clock::now();
    if (stolen) return stolen;
  }
  const std::string block = std::to_string(kPullBlock.count());
  auto read = redis.command(
      {"XREADGROUP", "GROUP", kGroup, me, "COUNT", "1", "BLOCK", block, "STREAMS", kQueue, ">"},
      kPullBlock);
  if (!read) {
    pause(std::min(redis.status().retry_in + std::chrono::milliseconds(50), kPullBlock), stopping);
    return std::nullopt;
  }
  if (read->is_error()) {
    if (read->str.rfind("NOGROUP", 0) == 0)
      (void)ensure_group();
    else
      pause(kPullBlock, stopping);
    return std::nullopt;
  }
  if (read->is_nil()) return std::nullopt;  // nothing within the block time
  auto got = entries_of(read->at(0).at(1));
  if (got.empty()) return std::nullopt;
  ++claimed;
  return got.front();
}

void RedisJobStore::State::consume_loop() {
  Clock::time_point next_reclaim{};
  std::string cursor = "0-0";
  while (!stopping) {
    // An entry taken just as stopping began still runs: the backends outlive
    // the store, and it would otherwise wait reclaim_after for another replica.
    if (auto entry = next_entry(next_reclaim, cursor)) run_entry(*entry);
  }
}

void RedisJobStore::State::run_entry(const StreamEntry& entry) {
  const std::string id = field_of(entry.fields, "job");
  const std::string index = field_of(entry.fields, "item");
  const std::string j = job_key(id);
  {
    std::lock_guard lock(mutex);
    in_progress.insert(entry.id);
  }
  struct Done {
    State* s;
    std::string id;
    ~Done() {
      std::lock_guard lock(s->mutex);
      s->in_progress.erase(id);
    }
  } done{this, entry.id};

  const std::string input_key = j + ":input:" + index;
  auto begin_replies = redis.eval_with(kBegin, {j, kQueue}, {index, entry.id, kGroup, ttl_ms()}, {},
                                       {{"GET", input_key}}, false);
  if (!begin_replies || (*begin_replies)[0].is_error() || (*begin_replies)[0].at(0).str != "run")
    return;
  const RedisValue* begun = &(*begin_replies)[0];
  const std::string& input = (*begin_replies)[1].str;
  const std::string& backend_name = begun->at(1).str;
  ItemResult item = item_of(begun->at(3).str, "running");
  item.replica = options.replica;
  std::size_t item_index = 0;
  std::from_chars(index.data(), index.data() + index.size(), item_index);

  auto params = job_params_of(begun->at(2).str);
  auto backend = backends.find(backend_name);
  ImageRun run;
  if (!params) {
    run.output = params.error();
  } else if (!backend) {
    run.output = backend.error();
  } else if (item.url.empty() && input.empty() && item.input_bytes > 0) {
    run.output = Error{ErrorCode::internal, "the item's input is gone from the store (expired)"};
  } else {
    run = run_image(ImageSource{input, item.url}, std::move(params.value()), **backend, downloader,
                    metrics, ImageRunOptions{std::chrono::seconds(30)});
  }
  item.download_ms = run.download_ms;
  item.input_bytes = run.input_bytes;
  item.total_ms = run.total_ms;
  std::string bytes, type, name;
  if (run.output) {
    item.state = ItemState::succeeded;
    item.output_bytes = run.output->bytes.size();
    item.width = run.output->width;
    item.height = run.output->height;
    item.format = run.output->format;
    item.times = run.output->times;
    bytes = std::move(run.output->bytes);
    type = std::string(mime_type(item.format));
    name = output_file_name(item.name, item.url, item_index, item.format);
  } else {
    item.state = ItemState::failed;
    item.error = run.output.error();
  }
  const std::string record = record_of(item);
  const std::string state(item_state_name(item.state));
  const std::string in = std::to_string(item.input_bytes);
  const std::string out = std::to_string(item.output_bytes);
  // The result is the work: keep trying to record it while the store is
  // away (up to reclaim_after; after that another replica will have taken
  // the item over and recorded its own run).
  const auto give_up = Clock::now() + options.reclaim_after;
  const std::string key = result_key(item.result_id);
  const std::string ttl = ttl_ms();
  std::vector<std::vector<std::string_view>> store_result;
  if (item.state == ItemState::succeeded) {
    store_result = {{"HSET", key, "bytes", bytes, "type", type, "name", name},
                    {"PEXPIRE", key, ttl}};
  }
  for (;;) {
    auto replies = redis.eval_with(kRecord, {j, kQueue},
                                   {index, entry.id, kGroup, state, record, in, out, ttl},
                                   store_result, {}, true);
    const RedisValue* recorded = replies ? &(*replies)[store_result.size()] : nullptr;
    if (recorded != nullptr && !recorded->is_error()) {
      if (recorded->integer == 0) ++duplicates;
      return;
    }
    if (recorded != nullptr) {
      std::fprintf(stderr, "pixpool: cannot record job %s item %s: %s\n", id.c_str(), index.c_str(),
                   recorded->str.c_str());
      return;
    }
    if (Clock::now() >= give_up) {
      std::fprintf(stderr, "pixpool: gave up recording job %s item %s: %s\n", id.c_str(),
                   index.c_str(), replies.error().message.c_str());
      return;
    }
    pause(std::chrono::milliseconds(200), closed);
  }
}

void RedisJobStore::State::forget_departed_consumers() {
  // Every replica start adds a consumer name to the group; names of replicas
  // gone for good (nothing pending, silent for long) are removed so the
  // group does not grow forever. A live consumer removed by mistake is
  // re-created by its next read.
  auto listed = redis.command({"XINFO", "CONSUMERS", kQueue, kGroup});
  if (!listed || listed->type != RedisValue::Type::array) return;
  for (const RedisValue& c : listed->elements) {
    const auto fields = hash_of(c);
    std::map<std::string, long long> numbers;
    for (std::size_t k = 0; k + 1 < c.elements.size(); k += 2) {
      numbers[c.elements[k].str] = c.elements[k + 1].integer;
    }
    const auto name = fields.find("name");
    if (name == fields.end() || name->second == options.replica) continue;
    if (numbers["pending"] == 0 &&
        numbers["idle"] > std::chrono::milliseconds(kConsumerForgetAfter).count()) {
      (void)redis.command({"XGROUP", "DELCONSUMER", kQueue, kGroup, name->second});
    }
  }
}

void RedisJobStore::State::heartbeat_loop() {
  // Refresh our claims well before reclaim_after: XCLAIM of an entry resets
  // its idle time. min-idle keeps us from taking back an entry another
  // replica has just reclaimed from us (if we stalled that long).
  const auto every = std::max(options.reclaim_after / 3, std::chrono::milliseconds(50));
  const std::string min_idle = std::to_string((every / 2).count());
  auto next_cleanup = Clock::now();
  while (!closed) {
    pause(every, closed);
    if (Clock::now() >= next_cleanup) {
      forget_departed_consumers();
      next_cleanup = Clock::now() + kConsumerCleanupEvery;
    }
    std::vector<std::string> ids;
    {
      std::lock_guard lock(mutex);
      ids.assign(in_progress.begin(), in_progress.end());
    }
    if (ids.empty()) continue;
    std::vector<std::string_view> args{"XCLAIM", kQueue, kGroup, options.replica, min_idle};
    for (const auto& id : ids) args.push_back(id);
    args.emplace_back("JUSTID");
    (void)redis.command(args);
  }
}

RedisJobStore::RedisJobStore(RedisJobStoreOptions options, const BackendSet& backends,
                             Downloader& downloader, Metrics& metrics)
    : state_(std::make_unique<State>(std::move(options), backends, downloader, metrics)) {
  (void)state_->ensure_group();  // consumers retry it on NOGROUP
  for (int i = 0; i < std::max(1, state_->options.consumers); ++i) {
    state_->consumers.emplace_back([s = state_.get()] { s->consume_loop(); });
  }
  state_->heartbeat = std::thread([s = state_.get()] { s->heartbeat_loop(); });
}

void RedisJobStore::stop_pulling() {
  state_->stopping = true;
  state_->wake.notify_all();
}

RedisJobStore::~RedisJobStore() {
  stop_pulling();
  for (auto& t : state_->consumers) t.join();
  // The heartbeat kept the consumers' claims fresh until their last item.
  state_->closed = true;
  state_->wake.notify_all();
  state_->heartbeat.join();
}

Result<JobSnapshot> RedisJobStore::start(std::vector<BatchInput> inputs, JobParams params,
                                         const std::string& backend) {
  if (state_->stopping) return Error{ErrorCode::shutting_down, "server is shutting down"};
  if (auto ok = check_item_count(inputs.size(), state_->options.max_items); !ok) {
    return ok.error();
  }
  if (auto found = state_->backends.find(backend); !found) return found.error();
  const std::string id = random_id();
  std::size_t bytes = 0;
  std::vector<std::string> records;
  records.reserve(inputs.size());
  JobSnapshot snap;
  snap.id = id;
  snap.backend = backend;
  for (const BatchInput& input : inputs) {
    bytes += input.bytes.size();
    ItemResult item;
    item.name = input.name;
    item.url = input.url;
    item.input_bytes = input.bytes.size();
    item.result_id = random_id();
    records.push_back(record_of(item));
    item.result_id.clear();
    snap.items.push_back(std::move(item));
  }
  if (bytes > state_->options.max_queued_bytes) {
    return Error{ErrorCode::invalid_parameter,
                 "the job's images total " + std::to_string(bytes) +
                     " bytes, more than the cluster's queued-input budget (" +
                     std::to_string(state_->options.max_queued_bytes) +
                     " bytes, --max-queued-bytes): split it"};
  }
  const std::string keep = std::to_string(
      std::chrono::milliseconds(state_->options.results_ttl + kUnfinishedJobGrace).count());
  const std::string budget = std::to_string(state_->options.max_queued_bytes);
  const std::string n = std::to_string(inputs.size());
  const std::string p = params_of(params);
  const std::string j = job_key(id);
  auto queue_full = [&](long long queued) -> Error {
    return Error{ErrorCode::queue_full, "the cluster's queued input is at its budget (" +
                                            std::to_string(queued) + " of " + budget +
                                            " bytes waiting); retry later (retry after 2 s)"};
  };
  // Refused at once when it cannot fit, before any byte is sent.
  {
    auto queued = state_->redis.command({"GET", kQueuedBytes});
    if (!queued) return queued.error();
    const long long now_queued = std::atoll(redis_text(*queued).c_str());
    if (bytes > 0 && now_queued + static_cast<long long>(bytes) >
                         static_cast<long long>(state_->options.max_queued_bytes)) {
      return queue_full(now_queued);
    }
  }
  // In chunks, so the first items run (on every replica) while the rest are
  // still being sent. A chunk is atomic (MULTI/EXEC); a job cut short by a
  // failure is cancelled, which releases what its chunks reserved.
  std::size_t first = 0;
  while (first < inputs.size()) {
    std::size_t count = 0;
    std::size_t chunk_bytes = 0;
    while (first + count < inputs.size() && count < kEnqueueChunkItems &&
           (count == 0 || chunk_bytes + inputs[first + count].bytes.size() <= kEnqueueChunkBytes)) {
      chunk_bytes += inputs[first + count].bytes.size();
      ++count;
    }
    auto enqueued = state_->enqueue_chunk(j, id, inputs, records, first, count, chunk_bytes, keep,
                                          budget, backend, p, n);
    if (!enqueued || *enqueued >= 0) {
      if (first > 0) (void)cancel(id);  // releases the chunks already reserved
      if (!enqueued) return enqueued.error();
      return queue_full(*enqueued);
    }
    first += count;
    state_->wake.notify_all();
  }
  state_->wake.notify_all();
  snap.summary.total = inputs.size();
  return snap;
}

Result<std::optional<JobSnapshot>> RedisJobStore::find(const std::string& id) {
  return state_->snapshot(id);
}

Result<std::optional<std::pair<JobSnapshot, std::size_t>>> RedisJobStore::cancel(
    const std::string& id) {
  using Out = std::optional<std::pair<JobSnapshot, std::size_t>>;
  auto reply = state_->redis.eval(kCancel, {job_key(id)}, {state_->ttl_ms()});
  if (!reply) return reply.error();
  if (reply->is_error()) return state_->store_error("cancel failed: " + reply->str);
  if (reply->integer < 0) return Out{};
  auto snap = state_->snapshot(id);
  if (!snap) return snap.error();
  if (!*snap) return Out{};
  return Out{std::make_pair(std::move(**snap), static_cast<std::size_t>(reply->integer))};
}

Result<std::optional<JobProgress>> RedisJobStore::progress(const std::string& id,
                                                           const std::string& cursor,
                                                           std::chrono::milliseconds timeout) {
  const std::string j = job_key(id);
  const std::string events = j + ":events";
  const std::string from = cursor.empty() ? "0-0" : cursor;
  if (from.find_first_not_of("0123456789-") != std::string::npos || from.size() > 41) {
    return Error{ErrorCode::invalid_parameter, "bad event cursor '" + cursor + "'"};
  }
  // Whether the job is over is read before its events: the script that
  // ends a job appends its last events in the same step.
  auto first = state_->redis.pipeline({{"EXISTS", j},
                                       {"HEXISTS", j, "ended_ms"},
                                       {"XREAD", "COUNT", "1000", "STREAMS", events, from}});
  if (!first) return first.error();
  if ((*first)[0].integer == 0) return std::optional<JobProgress>{};
  const bool ended = (*first)[1].integer == 1;
  RedisValue read = std::move((*first)[2]);
  if (read.is_error()) {
    return Error{ErrorCode::invalid_parameter, "bad event cursor '" + cursor + "': " + read.str};
  }
  if (read.is_nil() && timeout.count() > 0 && !ended) {
    const auto block = std::min(timeout, kMaxProgressBlock);
    auto waited = state_->redis.command(
        {"XREAD", "COUNT", "1000", "BLOCK", std::to_string(block.count()), "STREAMS", events, from},
        block);
    if (!waited) return waited.error();
    read = std::move(waited.value());
  }
  JobProgress out;
  out.cursor = from;
  bool done = false;
  for (const StreamEntry& e : entries_of(read.at(0).at(1))) {
    out.cursor = e.id;
    if (e.fields.contains("done")) {
      done = true;
      continue;
    }
    std::size_t index = 0;
    const std::string text = field_of(e.fields, "index");
    std::from_chars(text.data(), text.data() + text.size(), index);
    out.finished.push_back(
        {e.id, index, item_of(field_of(e.fields, "record", "{}"), field_of(e.fields, "state"))});
  }
  // A cursor past the job's last event (e.g. an SSE client reconnecting
  // after `done`) hears `done` again.
  if (ended && out.finished.empty()) done = true;
  if (done) {
    auto snap = state_->snapshot(id);
    if (!snap) return snap.error();
    if (*snap) out.done = (*snap)->summary;
  }
  return std::optional<JobProgress>{std::move(out)};
}

Result<std::shared_ptr<const StoredResult>> RedisJobStore::result(const std::string& id) {
  if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return std::shared_ptr<const StoredResult>{};  // not an id we make
  }
  auto reply = state_->redis.command({"HGETALL", result_key(id)});
  if (!reply) return reply.error();
  if (reply->is_error()) return state_->store_error(reply->str);
  auto hash = hash_of(*reply);
  if (hash.empty()) return std::shared_ptr<const StoredResult>{};
  auto out = std::make_shared<StoredResult>();
  out->bytes = std::move(hash["bytes"]);
  out->content_type = hash["type"];
  out->name = hash["name"];
  out->created =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(number(hash, "created_ms")));
  return std::shared_ptr<const StoredResult>(std::move(out));
}

JobStoreStatus RedisJobStore::status() const {
  const auto s = state_->redis.status();
  return JobStoreStatus{"redis", state_->options.endpoint.display(), s.up, s.error, s.retry_in};
}

std::string RedisJobStore::exposition() const {
  std::ostringstream out;
  const auto s = state_->redis.status();
  out << "# HELP pixpool_store_up Whether the last call to the job store worked (1) or not (0).\n"
         "# TYPE pixpool_store_up gauge\n"
      << "pixpool_store_up " << (s.up ? 1 : 0) << "\n"
      << "# HELP pixpool_store_errors_total Calls to the job store that failed.\n"
         "# TYPE pixpool_store_errors_total counter\n"
      << "pixpool_store_errors_total " << s.errors << "\n"
      << "# HELP pixpool_store_reconnects_total Connections to the job store opened after a "
         "failure.\n"
         "# TYPE pixpool_store_reconnects_total counter\n"
      << "pixpool_store_reconnects_total " << s.reconnects << "\n"
      << "# HELP pixpool_store_round_trip_seconds Round trips to the job store.\n"
         "# TYPE pixpool_store_round_trip_seconds histogram\n";
  for (std::size_t b = 0; b < Histogram::bounds().size(); ++b) {
    out << "pixpool_store_round_trip_seconds_bucket{le=\"" << Histogram::bounds()[b] << "\"} "
        << s.round_trip.counts[b] << "\n";
  }
  out << "pixpool_store_round_trip_seconds_bucket{le=\"+Inf\"} " << s.round_trip.count << "\n"
      << "pixpool_store_round_trip_seconds_sum " << s.round_trip.sum << "\n"
      << "pixpool_store_round_trip_seconds_count " << s.round_trip.count << "\n"
      << "# HELP pixpool_cluster_items_claimed_total Queue items this replica took.\n"
         "# TYPE pixpool_cluster_items_claimed_total counter\n"
      << "pixpool_cluster_items_claimed_total " << state_->claimed.load() << "\n"
      << "# HELP pixpool_cluster_items_reclaimed_total Queue items this replica took over from "
         "a silent replica.\n"
         "# TYPE pixpool_cluster_items_reclaimed_total counter\n"
      << "pixpool_cluster_items_reclaimed_total " << state_->reclaimed.load() << "\n"
      << "# HELP pixpool_cluster_items_duplicate_total Items this replica ran that another had "
         "already recorded (not recorded again).\n"
         "# TYPE pixpool_cluster_items_duplicate_total counter\n"
      << "pixpool_cluster_items_duplicate_total " << state_->duplicates.load() << "\n";
  // Cluster-wide gauges, read now (skipped while the store is away).
  auto replies = state_->redis.pipeline({{"XLEN", kQueue},
                                         {"XPENDING", kQueue, kGroup},
                                         {"XRANGE", kQueue, "-", "+", "COUNT", "1"},
                                         {"TIME"},
                                         {"GET", kQueuedBytes}});
  if (!replies) return out.str();
  const auto& r = *replies;
  const long long length = r[0].integer;
  const long long pending = r[1].is_error() ? 0 : r[1].at(0).integer;
  double oldest_s = 0;
  if (!r[2].elements.empty()) {
    const std::string& first = r[2].at(0).at(0).str;
    const long long ms = std::atoll(first.substr(0, first.find('-')).c_str());
    oldest_s = std::max(0.0, static_cast<double>(redis_now_ms(r[3]) - ms) / 1000.0);
  }
  out << "# HELP pixpool_cluster_queue_length Items in the cluster queue not finished yet "
         "(waiting or claimed by a replica).\n"
         "# TYPE pixpool_cluster_queue_length gauge\n"
      << "pixpool_cluster_queue_length " << length << "\n"
      << "# HELP pixpool_cluster_queue_claimed Items claimed by a replica and not finished.\n"
         "# TYPE pixpool_cluster_queue_claimed gauge\n"
      << "pixpool_cluster_queue_claimed " << pending << "\n"
      << "# HELP pixpool_cluster_oldest_item_age_seconds Age of the oldest unfinished item "
         "(0 when the queue is empty).\n"
         "# TYPE pixpool_cluster_oldest_item_age_seconds gauge\n"
      << "pixpool_cluster_oldest_item_age_seconds " << oldest_s << "\n"
      << "# HELP pixpool_cluster_queued_input_bytes Input bytes held in the store for "
         "unfinished items (budget: --max-queued-bytes).\n"
         "# TYPE pixpool_cluster_queued_input_bytes gauge\n"
      << "pixpool_cluster_queued_input_bytes " << std::atoll(redis_text(r[4]).c_str()) << "\n";
  return out.str();
}

}  // namespace pixpool
