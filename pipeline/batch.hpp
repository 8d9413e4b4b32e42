#pragma once
// Batches: many images (uploads and/or URLs) processed concurrently on one
// backend, with per-item results, progress and cancellation. The same engine
// serves POST /v1/batch (wait, then answer) and POST /v1/jobs (answer 202,
// follow progress through status, events and archive).
//
// Each item: run_image (download URL items on the Downloader's I/O pool,
// submit to the backend, record metrics; pipeline/image_run.hpp) -> store the
// output in the ResultStore. Item tasks run on a
// small executor whose threads only wait on futures; pixel work stays on the
// backend. One bad item fails alone.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "pipeline/backend.hpp"
#include "pipeline/downloader.hpp"
#include "pipeline/job.hpp"
#include "pipeline/metrics.hpp"
#include "pipeline/result_store.hpp"

namespace pixpool {

struct BatchInput {
  std::string name;   // upload file name, or "" for URL items
  std::string url;    // "" for uploads
  std::string bytes;  // upload bytes (moved out once the item starts)
};

enum class ItemState { pending, running, succeeded, failed, cancelled };

struct ItemResult {
  std::string name;
  std::string url;
  ItemState state = ItemState::pending;
  std::optional<Error> error;  // failed (or cancelled) items
  std::string result_id;       // succeeded items: id in the ResultStore ("" if not stored)
  std::size_t input_bytes = 0;
  std::size_t output_bytes = 0;
  int width = 0;
  int height = 0;
  ImageFormat format = ImageFormat::png;
  double download_ms = 0;
  StageTimes times;
  double total_ms = 0;  // run_image's total_ms: bytes or URL in hand -> output, download included
  std::string replica;  // the replica that processed it (Redis store only)
};

enum class BatchState { running, done, cancelled };

struct BatchSummary {
  BatchState state = BatchState::running;
  std::size_t total = 0;
  std::size_t finished = 0;  // succeeded + failed + cancelled
  std::size_t succeeded = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  double elapsed_s = 0;
  double images_per_s = 0;  // succeeded / elapsed
  std::size_t bytes_in = 0;
  std::size_t bytes_out = 0;
  double megabytes_per_s = 0;  // bytes_in of succeeded items / elapsed
};

// A batch in progress. Thread-safe; shared between the runner, HTTP handlers
// and SSE streams.
class Batch {
 public:
  Batch(std::string id, std::string backend, std::size_t items);

  const std::string& id() const { return id_; }
  const std::string& backend() const { return backend_; }
  std::chrono::system_clock::time_point created() const { return created_; }

  BatchSummary summary() const;
  std::vector<ItemResult> items() const;
  ItemResult item(std::size_t index) const;

  // Indices of finished items in the order they finished.
  // Blocks until more than `seen` items have finished, the batch is over, or
  // `timeout` passes; returns the finish order so far.
  std::vector<std::size_t> wait_for_progress(std::size_t seen,
                                             std::chrono::milliseconds timeout) const;
  void wait_until_done() const;
  bool over() const;

  // Marks items that have not started as cancelled. Returns how many.
  std::size_t cancel();

  // Runner side.
  bool begin_item(std::size_t index, const std::string& name, const std::string& url);
  void finish_item(std::size_t index, ItemResult result);
  void set_item_identity(std::size_t index, std::string name, std::string url);

 private:
  BatchSummary summary_locked() const;

  const std::string id_;
  const std::string backend_;
  const std::chrono::system_clock::time_point created_ = std::chrono::system_clock::now();
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;
  mutable std::condition_variable progress_;
  std::vector<ItemResult> items_;
  std::vector<std::size_t> finish_order_;
  std::optional<std::chrono::steady_clock::time_point> ended_;
  bool cancel_requested_ = false;
};

// Defaults here are the server's defaults (service/config.hpp embeds this).
struct BatchRunnerOptions {
  int threads = 32;                // item tasks in flight across all batches
  std::size_t max_items = 1000;    // per batch
  std::size_t max_batches = 1000;  // remembered batches (oldest finished ones dropped)
  std::string id_prefix;           // e.g. "r1-" so a load balancer can route by id
  // Inputs accepted but not started, across all batches: beyond these,
  // start() answers queue_full instead of holding more memory.
  std::size_t max_queued_items = 20000;
  std::size_t max_queued_bytes = std::size_t{512} << 20;
};

class BatchRunner {
 public:
  // `downloader`, `results` and `metrics` must outlive the runner.
  BatchRunner(BatchRunnerOptions options, Downloader& downloader, ResultStore& results,
              Metrics& metrics);
  ~BatchRunner();  // cancels pending items, waits for running ones
  BatchRunner(const BatchRunner&) = delete;
  BatchRunner& operator=(const BatchRunner&) = delete;

  // Starts a batch. Errors: invalid_parameter (no items, more than
  // max_items), queue_full (max_queued_items/bytes reached), shutting_down.
  Result<std::shared_ptr<Batch>> start(std::vector<BatchInput> inputs, JobParams params,
                                       Backend& backend);

  // A remembered batch, or nullptr.
  std::shared_ptr<Batch> find(const std::string& id) const;

  const BatchRunnerOptions& options() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string_view item_state_name(ItemState state);

// Whether a batch of `items` may start: invalid_parameter for none, or for
// more than `max_items`. Both job stores ask it.
Result<void> check_item_count(std::size_t items, std::size_t max_items);

// The file name of item `index`'s output in `format`: its upload name (or a
// URL's last path segment) with the format's extension, unsafe characters
// replaced: "photo.jpg" + png -> "photo.png"; "item-3.jpg" when empty.
std::string output_file_name(const std::string& name, const std::string& url, std::size_t index,
                             ImageFormat format);
std::string_view batch_state_name(BatchState state);

}  // namespace pixpool
