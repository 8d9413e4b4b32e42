// pixpool: entry point. Order matters:
//  0. `pixpool --pixpool-zygote` is the worker zygote (pipeline/zygote.hpp):
//     the supervisor starts this binary again in that mode, so it is checked
//     before anything else runs;
//  1. stop signals are blocked before any thread exists, so every thread
//     inherits the mask and only the signal thread sees SIGTERM/SIGINT;
//  2. the zygote's supervisor (posix_spawn: this process never forks), then
//     the backends' threads, then the HTTP server.

#include <oneapi/tbb/global_control.h>
#include <pthread.h>
#include <unistd.h>  // environ

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench.hpp"
#include "core/malloc_tuning.hpp"
#include "filters/buffer_pool.hpp"
#include "filters/op_registry.hpp"
#include "filters/test_ops/test_ops.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/batch.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/memory_job_store.hpp"
#include "pipeline/metrics.hpp"
#include "pipeline/pixel_budget.hpp"
#include "pipeline/process_pool_backend.hpp"
#include "pipeline/redis_job_store.hpp"
#include "pipeline/result_store.hpp"
#include "pipeline/tbb_backend.hpp"
#include "pipeline/zygote.hpp"
#include "service/config.hpp"
#include "service/server.hpp"

#ifndef PIXPOOL_VERSION
#define PIXPOOL_VERSION "dev"
#endif

namespace {

// The names of every variable in the environment, for typo warnings.
std::vector<std::string> environment_names() {
  std::vector<std::string> names;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    names.emplace_back(text.substr(0, text.find('=')));
  }
  return names;
}

// Zygote mode's part of --enable-test-ops: the workers know the test ops too.
// This replica's name: --replica-id, else "hostname:pid" (unique among
// replicas sharing a Redis store, and readable in logs).
std::string replica_name(const std::string& configured) {
  if (!configured.empty()) return configured;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof host, "pixpool");
  return std::string(host) + ":" + std::to_string(getpid());
}

pixpool::Result<void> prepare_zygote(const pixpool::ZygoteEnvironment& environment) {
  if (!environment.test_ops) return {};
  return pixpool::register_test_ops(pixpool::default_registry());
}

// PIXPOOL_TEST_ZYGOTE_FAILURES=N (tests, with --enable-test-ops only): the
// first N zygote replacements fail, to observe the back-off and Retry-After.
int injected_zygote_failures(bool test_ops) {
  const char* text = std::getenv("PIXPOOL_TEST_ZYGOTE_FAILURES");
  if (!test_ops || text == nullptr) return 0;
  return std::clamp(std::atoi(text), 0, 100);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pixpool;
  run_zygote_if_requested(argc, argv, prepare_zygote);  // returns unless we are the zygote
  std::vector<std::string> args(argv + 1, argv + argc);
  // `pixpool bench ...` is the load-test client: no zygote, no server, and
  // signals left unblocked so Ctrl-C reaches it.
  if (!args.empty() && args.front() == "bench") {
    return run_bench(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  auto cli = parse_command_line(
      args, [](const char* name) { return std::getenv(name); }, environment_names());
  if (!cli) {
    std::fprintf(stderr, "pixpool: %s\n", cli.error().message.c_str());
    return 2;
  }
  for (const std::string& warning : cli->warnings) {
    std::fprintf(stderr, "pixpool: warning: %s\n", warning.c_str());
  }
  if (cli->help) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  if (cli->version) {
    std::puts("pixpool " PIXPOOL_VERSION);
    return 0;
  }
  const Config& config = cli->config;

  // The test-only ops exist only under --enable-test-ops. The zygote
  // registers them too (ZygoteEnvironment::test_ops, prepare_zygote).
  if (config.enable_test_ops) {
    if (auto ok = register_test_ops(default_registry()); !ok) {
      std::fprintf(stderr, "pixpool: %s\n", ok.error().message.c_str());
      return 1;
    }
  }

  // The zygote installs its share too (ZygoteEnvironment), so worker
  // processes reuse buffers as well. The idle-buffer allowance is split
  // evenly between this process and the workers: idle memory stays within
  // buffer_pool_bytes however many there are.
  const int worker_count =
      config.process.workers > 0
          ? config.process.workers
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::size_t pool_share = config.buffer_pool_bytes / (worker_count + 1);
  if (pool_share > 0) install_buffer_pool(pool_share);
  // Blocks of 4 MiB and up (upload bodies, encoded outputs, refused uploads
  // read up to --max-body-bytes) are mapped and unmapped on their own.
  // glibc's default threshold grows with every large block freed (up to
  // 32 MiB), after which such blocks stay cached in the per-thread arenas:
  // the attack suite's smuggling row left 650 MiB behind. Pixel buffers are
  // pooled separately (install_buffer_pool), so this costs no page faults
  // there. The zygote sets the same (ZygoteEnvironment), so workers do too.
  // tune_malloc also keeps up to 8 MiB free per heap rather than trimming
  // it after every image (core/malloc_tuning.hpp).
  constexpr int kMmapThreshold = 4 << 20;
  tune_malloc(kMmapThreshold);

  std::signal(SIGPIPE, SIG_IGN);  // a client hanging up must not kill the server
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // internal wake-up, see below
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ZygoteOptions zygote_options;
  zygote_options.environment = {config.enable_test_ops, pool_share, kMmapThreshold};
  zygote_options.fail_replacements = injected_zygote_failures(config.enable_test_ops);
  auto zygote = Zygote::start(zygote_options);
  if (!zygote) {
    std::fprintf(stderr, "pixpool: %s\n", zygote.error().message.c_str());
    return 1;
  }

  // One memory budget for both backends: they share the machine's RAM.
  auto budget = std::make_shared<PixelBudget>(config.admission.max_inflight_pixels);
  const auto admission_wait = config.admission.wait;
  // TBB's thread limit is set once, here, for the whole process (oneTBB's
  // advice to applications): the arena's threads plus one, see tbb_backend.hpp.
  const tbb::global_control tbb_parallelism(tbb::global_control::max_allowed_parallelism,
                                            tbb_parallelism_for(config.tbb));
  BackendSet backends;
  backends.add(std::make_unique<BudgetedBackend>(std::make_unique<TbbBackend>(config.tbb), budget,
                                                 admission_wait));
  auto pool = ProcessPoolBackend::create(config.process, *zygote);
  if (!pool) {
    std::fprintf(stderr, "pixpool: cannot start worker processes: %s\n",
                 pool.error().message.c_str());
    return 1;
  }
  const int workers = pool.value()->stats().workers;
  backends.add(std::make_unique<BudgetedBackend>(std::move(pool.value()), budget, admission_wait));

  Downloader downloader(config.download);
  Metrics metrics;
  // Memory store: replica routing, ids of stored results and batches start
  // with "r1-". A Redis store shares ids across replicas: no prefix.
  const bool clustered = config.store_endpoint.has_value();
  const std::string id_prefix =
      config.replica_id.empty() || clustered ? "" : config.replica_id + "-";
  ResultStoreOptions result_options = config.results;
  result_options.id_prefix = id_prefix;
  ResultStore results(std::move(result_options));
  BatchRunnerOptions batch_options = config.batches;
  batch_options.id_prefix = id_prefix;
  auto batches =
      std::make_unique<BatchRunner>(std::move(batch_options), downloader, results, metrics);
  const std::string replica = replica_name(config.replica_id);
  std::unique_ptr<JobStore> store;
  // Told to stop taking items on SIGTERM, by the signal thread. The mutex
  // orders that call before the store's destruction below (the signal
  // thread's server.stop() makes run() return, but through a socket, which
  // ThreadSanitizer cannot see as ordering).
  RedisJobStore* cluster_store = nullptr;
  std::mutex cluster_store_mutex;
  if (clustered) {
    RedisJobStoreOptions options;
    options.endpoint = *config.store_endpoint;
    options.replica = replica;
    options.reclaim_after = config.reclaim_after;
    options.results_ttl = config.results.ttl;
    options.max_items = config.batches.max_items;
    options.max_queued_bytes = config.batches.max_queued_bytes;
    // Items in flight on this replica: enough to keep every worker of the
    // larger backend busy while others download, as a batch here would.
    int most_workers = 1;
    for (const auto& backend : backends.all()) {
      most_workers = std::max(most_workers, backend->stats().workers);
    }
    options.consumers = 2 * most_workers;
    auto redis_store =
        std::make_unique<RedisJobStore>(std::move(options), backends, downloader, metrics);
    cluster_store = redis_store.get();
    store = std::move(redis_store);
  } else {
    store = std::make_unique<MemoryJobStore>(*batches, results, backends);
  }

  Server server(config, ServerParts{backends, downloader, *store, metrics, replica});
  auto port = server.bind();
  if (!port) {
    std::fprintf(stderr, "pixpool: %s\n", port.error().message.c_str());
    return 1;
  }
  std::fprintf(
      stderr,
      "pixpool %s listening on http://%s:%d (backends: %s; default %s; "
      "%d worker processes; store %s; replica %s)%s\n",
      PIXPOOL_VERSION, config.http.host.c_str(), *port, backends.names().c_str(),
      config.default_backend.c_str(), workers,
      store->status().kind == "redis" ? config.store_endpoint->display().c_str() : "memory",
      replica.c_str(), config.enable_test_ops ? " [test ops enabled]" : "");

  std::promise<void> drained;
  auto drained_future = drained.get_future();
  std::thread signal_thread([&] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    if (signal_number == SIGUSR1) return;  // main is done without a signal
    std::fprintf(stderr, "pixpool: %s received, finishing in-flight requests (up to %s)\n",
                 signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
                 format_duration(config.http.shutdown_timeout).c_str());
    // stop() is a no-op until the listener runs, so repeat it: a signal that
    // arrives during startup is not lost.
    const auto deadline = std::chrono::steady_clock::now() + config.http.shutdown_timeout;
    // A replica that is going takes no more items from the cluster queue
    // (the others do); those it runs finish while HTTP drains.
    {
      const std::lock_guard lock(cluster_store_mutex);
      if (cluster_store != nullptr) cluster_store->stop_pulling();
    }
    do {
      server.stop();
    } while (drained_future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready &&
             std::chrono::steady_clock::now() < deadline);
    if (drained_future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      std::fprintf(stderr, "pixpool: shutdown deadline passed, exiting with work in flight\n");
      std::_Exit(1);
    }
  });

  const bool served = server.run();  // returns once stop() has drained HTTP threads
  // A Redis store stops pulling items and finishes those it runs (others
  // stay in the cluster queue); the memory runner cancels items not
  // started and waits for running ones.
  {
    const std::lock_guard lock(cluster_store_mutex);
    cluster_store = nullptr;
  }
  store.reset();
  batches.reset();
  for (const auto& backend : backends.all()) backend->shutdown();
  drained.set_value();
  pthread_kill(signal_thread.native_handle(), SIGUSR1);  // no-op if it already returned
  signal_thread.join();
  std::fprintf(stderr, "pixpool: stopped\n");
  return served ? 0 : 1;
}
