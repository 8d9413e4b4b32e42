#pragma once
// The cluster's job store (--store redis://...): job records, inputs until
// their item finishes, results (with a TTL) and progress events live in
// Redis, so every replica answers for every job; items flow through one
// Redis Stream consumer group that every replica pulls from as its backends
// have room, so one job is processed by all replicas.
//
// Keys (all under "pixpool:"):
//   queue                      stream of items to run {job, item}; group "pixpool"
//   queued_bytes               input bytes held for items not finished (budget)
//   job:<id>                   hash: backend, params, totals, created/ended ms, cancel
//   job:<id>:states            hash: item index -> pending|running|succeeded|failed|cancelled
//   job:<id>:items             hash: item index -> its record (JSON: name, url, timings...)
//   job:<id>:input:<index>     the upload's bytes, until the item finishes
//   job:<id>:events            stream: one entry per finished item, then {done}
//   result:<id>                hash: bytes, type, name, created_ms (expires after the TTL)
//
// Guarantees: an item is processed at least once and recorded exactly once
// (a Lua script records an item only if it is not finished yet, stores its
// result, appends its event and acknowledges the queue entry in one atomic
// step). A replica that dies leaves its claimed items pending in the group;
// live replicas refresh their claims (XCLAIM) every reclaim_after / 3, and
// any replica takes over an item idle longer than reclaim_after
// (XAUTOCLAIM). Needs Redis >= 6.2 (XAUTOCLAIM), a single instance or a
// primary with replicas (scripts build key names, so not Redis Cluster).

#include <chrono>
#include <memory>
#include <string>

#include "pipeline/downloader.hpp"
#include "pipeline/job_store.hpp"
#include "pipeline/metrics.hpp"
#include "pipeline/redis_client.hpp"

namespace pixpool {

struct RedisJobStoreOptions {
  RedisEndpoint endpoint;
  std::string replica;  // this replica's name (consumer name, items' "replica")
  std::chrono::milliseconds reclaim_after{30000};
  std::chrono::seconds results_ttl{3600};  // results and finished job records
  std::size_t max_items = 1000;            // per job
  // Input bytes of unfinished items across the cluster; beyond it start()
  // answers queue_full.
  std::size_t max_queued_bytes = std::size_t{512} << 20;
  int consumers = 4;  // items this replica runs at once (pulled as they finish)
  RedisClientOptions client;
};

class RedisJobStore final : public JobStore {
 public:
  // `backends`, `downloader` and `metrics` must outlive the store. Starts
  // the consumer threads at once; they keep retrying while Redis is down.
  RedisJobStore(RedisJobStoreOptions options, const BackendSet& backends, Downloader& downloader,
                Metrics& metrics);
  ~RedisJobStore() override;  // stop_pulling(), then waits for running items

  Result<JobSnapshot> start(std::vector<BatchInput> inputs, JobParams params,
                            const std::string& backend) override;
  Result<std::optional<JobSnapshot>> find(const std::string& id) override;
  Result<std::optional<std::pair<JobSnapshot, std::size_t>>> cancel(const std::string& id) override;
  // Cursors are event stream ids ("" = from the start); waits at most 2 s
  // per call, whatever `timeout` asks, so a blocked read holds a pooled
  // connection only briefly.
  Result<std::optional<JobProgress>> progress(const std::string& id, const std::string& cursor,
                                              std::chrono::milliseconds timeout) override;
  Result<std::shared_ptr<const StoredResult>> result(const std::string& id) override;
  JobStoreStatus status() const override;
  std::string exposition() const override;

  // Stops taking new items from the queue (shutdown); items running finish.
  void stop_pulling();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace pixpool
