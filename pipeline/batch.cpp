#include "pipeline/batch.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <thread>

#include "pipeline/image_run.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

bool finished(ItemState s) {
  return s == ItemState::succeeded || s == ItemState::failed || s == ItemState::cancelled;
}

}  // namespace

std::string_view item_state_name(ItemState state) {
  switch (state) {
    case ItemState::pending:
      return "pending";
    case ItemState::running:
      return "running";
    case ItemState::succeeded:
      return "succeeded";
    case ItemState::failed:
      return "failed";
    case ItemState::cancelled:
      return "cancelled";
  }
  return "pending";
}

std::string_view batch_state_name(BatchState state) {
  switch (state) {
    case BatchState::running:
      return "running";
    case BatchState::done:
      return "done";
    case BatchState::cancelled:
      return "cancelled";
  }
  return "running";
}

// ---- Batch -----------------------------------------------------------------

Batch::Batch(std::string id, std::string backend, std::size_t items)
    : id_(std::move(id)), backend_(std::move(backend)), items_(items) {}

BatchSummary Batch::summary_locked() const {
  BatchSummary s;
  s.total = items_.size();
  for (const ItemResult& item : items_) {
    switch (item.state) {
      case ItemState::succeeded:
        ++s.succeeded;
        s.bytes_in += item.input_bytes;
        s.bytes_out += item.output_bytes;
        break;
      case ItemState::failed:
        ++s.failed;
        break;
      case ItemState::cancelled:
        ++s.cancelled;
        break;
      default:
        break;
    }
  }
  s.finished = s.succeeded + s.failed + s.cancelled;
  const auto end = ended_.value_or(Clock::now());
  s.elapsed_s = std::chrono::duration<double>(end - started_).count();
  if (s.elapsed_s > 0) {
    s.images_per_s = static_cast<double>(s.succeeded) / s.elapsed_s;
    s.megabytes_per_s = static_cast<double>(s.bytes_in) / 1e6 / s.elapsed_s;
  }
  if (s.finished == s.total) {
    s.state = cancel_requested_ && s.cancelled > 0 ? BatchState::cancelled : BatchState::done;
  }
  return s;
}

BatchSummary Batch::summary() const {
  std::lock_guard lock(mutex_);
  return summary_locked();
}

std::vector<ItemResult> Batch::items() const {
  std::lock_guard lock(mutex_);
  return items_;
}

ItemResult Batch::item(std::size_t index) const {
  std::lock_guard lock(mutex_);
  return items_.at(index);
}

std::vector<std::size_t> Batch::wait_for_progress(std::size_t seen,
                                                  std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  progress_.wait_for(lock, timeout,
                     [&] { return finish_order_.size() > seen || ended_.has_value(); });
  return finish_order_;
}

void Batch::wait_until_done() const {
  std::unique_lock lock(mutex_);
  progress_.wait(lock, [&] { return ended_.has_value(); });
}

bool Batch::over() const {
  std::lock_guard lock(mutex_);
  return ended_.has_value();
}

std::size_t Batch::cancel() {
  std::lock_guard lock(mutex_);
  cancel_requested_ = true;
  std::size_t n = 0;
  for (std::size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].state != ItemState::pending) continue;
    items_[i].state = ItemState::cancelled;
    items_[i].error = Error{ErrorCode::shutting_down, "cancelled before it started"};
    finish_order_.push_back(i);
    ++n;
  }
  if (finish_order_.size() == items_.size() && !ended_) ended_ = Clock::now();
  progress_.notify_all();
  return n;
}

bool Batch::begin_item(std::size_t index, const std::string& name, const std::string& url) {
  std::lock_guard lock(mutex_);
  ItemResult& item = items_.at(index);
  item.name = name;
  item.url = url;
  if (item.state != ItemState::pending) return false;  // cancelled
  item.state = ItemState::running;
  return true;
}

void Batch::set_item_identity(std::size_t index, std::string name, std::string url) {
  std::lock_guard lock(mutex_);
  items_.at(index).name = std::move(name);
  items_.at(index).url = std::move(url);
}

void Batch::finish_item(std::size_t index, ItemResult result) {
  std::lock_guard lock(mutex_);
  ItemResult& item = items_.at(index);
  const bool was_finished = finished(item.state);
  item = std::move(result);
  if (!was_finished) finish_order_.push_back(index);
  if (finish_order_.size() == items_.size() && !ended_) ended_ = Clock::now();
  progress_.notify_all();
}

// ---- BatchRunner -------------------------------------------------------------

struct BatchRunner::State {
  BatchRunnerOptions options;
  Downloader& downloader;
  ResultStore& results;
  Metrics& metrics;

  std::mutex mutex;  // guards tasks, stopping, batches, order
  std::condition_variable task_ready;
  std::deque<std::function<void()>> tasks;
  bool stopping = false;
  std::vector<std::thread> threads;
  std::map<std::string, std::shared_ptr<Batch>> batches;
  std::deque<std::string> order;  // batch ids, oldest first
  std::size_t queued_items = 0;   // inputs accepted, not yet started
  std::size_t queued_bytes = 0;

  State(BatchRunnerOptions o, Downloader& d, ResultStore& r, Metrics& m)
      : options(std::move(o)), downloader(d), results(r), metrics(m) {}

  void worker_loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex);
        task_ready.wait(lock, [&] { return stopping || !tasks.empty(); });
        if (tasks.empty()) return;
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task();
    }
  }

  // One started batch: its inputs are fed to the executor a few at a time,
  // so items not yet handed to the backend can still be cancelled and one
  // large batch does not fill the backend's queue.
  struct Feed {
    std::shared_ptr<Batch> batch;
    std::vector<BatchInput> inputs;
    JobParams params;
    Backend* backend = nullptr;
    std::size_t next = 0;  // guarded by State::mutex
  };

  void run_item(const std::shared_ptr<Batch>& batch, std::size_t index, BatchInput input,
                const JobParams& params, Backend& backend);
  void launch_next_locked(const std::shared_ptr<Feed>& feed);
  void remember(const std::shared_ptr<Batch>& batch);
};

void BatchRunner::State::launch_next_locked(const std::shared_ptr<Feed>& feed) {
  if (stopping || feed->next >= feed->inputs.size()) return;
  const std::size_t index = feed->next++;
  queued_items -= 1;
  queued_bytes -= feed->inputs[index].bytes.size();
  tasks.emplace_back([this, feed, index] {
    run_item(feed->batch, index, std::move(feed->inputs[index]), feed->params, *feed->backend);
    {
      std::lock_guard lock(mutex);
      launch_next_locked(feed);
    }
    task_ready.notify_one();
  });
}

// "photo.jpg" + png -> "photo.png"; URL items use the last path segment.
std::string output_file_name(const std::string& name, const std::string& url, std::size_t index,
                             ImageFormat format) {
  std::string base = name;
  if (base.empty() && !url.empty()) {
    std::string path = url.substr(0, url.find_first_of("?#"));
    base = path.substr(path.find_last_of('/') + 1);
  }
  if (const auto dot = base.find_last_of('.'); dot != std::string::npos) base.resize(dot);
  std::string safe;
  for (char c : base) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    safe += ok ? c : '_';
  }
  if (safe.empty()) safe = "item-" + std::to_string(index + 1);
  const std::string extension =
      format == ImageFormat::jpeg ? "jpg" : std::string(format_name(format));
  return safe + "." + extension;
}

void BatchRunner::State::run_item(const std::shared_ptr<Batch>& batch, std::size_t index,
                                  BatchInput input, const JobParams& params, Backend& backend) {
  if (!batch->begin_item(index, input.name, input.url)) return;  // cancelled meanwhile
  ItemResult result;
  result.name = input.name;
  result.url = input.url;
  // A momentarily full backend (single requests compete for it) is retried
  // for up to 30 s rather than failing the item.
  ImageRun run = run_image(ImageSource{std::move(input.bytes), input.url}, params, backend,
                           downloader, metrics, ImageRunOptions{std::chrono::seconds(30)});
  result.download_ms = run.download_ms;
  result.input_bytes = run.input_bytes;
  // timings_ms.total of an item means what Server-Timing's total of
  // /v1/process means: run_image's total_ms, from the item's bytes or URL in
  // hand to the encoded output, download included (storing it is not).
  result.total_ms = run.total_ms;
  Result<JobOutput>& output = run.output;
  if (!output) {
    result.state = ItemState::failed;
    result.error = output.error();
    return batch->finish_item(index, std::move(result));
  }

  result.output_bytes = output->bytes.size();
  result.width = output->width;
  result.height = output->height;
  result.format = output->format;
  result.times = output->times;
  auto id =
      results.put(StoredResult{std::move(output->bytes), std::string(mime_type(result.format)),
                               output_file_name(input.name, input.url, index, result.format),
                               std::chrono::system_clock::now()});
  result.result_id = id.value_or("");
  result.state = ItemState::succeeded;
  batch->finish_item(index, std::move(result));
}

void BatchRunner::State::remember(const std::shared_ptr<Batch>& batch) {
  std::lock_guard lock(mutex);
  batches[batch->id()] = batch;
  order.push_back(batch->id());
  // Forget the oldest finished batches beyond the bound; running ones, and
  // the one just added (its id is about to be handed out), stay.
  for (auto it = order.begin(); batches.size() > options.max_batches && it != order.end();) {
    auto found = batches.find(*it);
    if (found != batches.end() && found->second->over() && *it != batch->id()) {
      batches.erase(found);
      it = order.erase(it);
    } else {
      ++it;
    }
  }
}

BatchRunner::BatchRunner(BatchRunnerOptions options, Downloader& downloader, ResultStore& results,
                         Metrics& metrics)
    : state_(std::make_unique<State>(std::move(options), downloader, results, metrics)) {
  const int n = std::max(1, state_->options.threads);
  for (int i = 0; i < n; ++i)
    state_->threads.emplace_back([s = state_.get()] { s->worker_loop(); });
}

BatchRunner::~BatchRunner() {
  std::vector<std::shared_ptr<Batch>> all;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    for (auto& [id, batch] : state_->batches) all.push_back(batch);
  }
  for (auto& batch : all) batch->cancel();  // queued items return at once
  state_->task_ready.notify_all();
  for (auto& t : state_->threads) t.join();
}

const BatchRunnerOptions& BatchRunner::options() const {
  return state_->options;
}

Result<void> check_item_count(std::size_t items, std::size_t max_items) {
  if (items == 0) {
    return Error{ErrorCode::invalid_parameter,
                 "no images: send 'image' files and/or 'url' fields (or JSON {\"urls\":[...]})"};
  }
  if (items > max_items) {
    return Error{ErrorCode::invalid_parameter, "too many items: " + std::to_string(items) +
                                                   " (at most " + std::to_string(max_items) +
                                                   " per batch)"};
  }
  return {};
}

Result<std::shared_ptr<Batch>> BatchRunner::start(std::vector<BatchInput> inputs, JobParams params,
                                                  Backend& backend) {
  if (auto ok = check_item_count(inputs.size(), state_->options.max_items); !ok) {
    return ok.error();
  }
  auto batch = std::make_shared<Batch>(state_->options.id_prefix + random_id(),
                                       std::string(backend.name()), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    batch->set_item_identity(i, inputs[i].name, inputs[i].url);
  }
  auto feed = std::make_shared<State::Feed>();
  feed->batch = batch;
  feed->inputs = std::move(inputs);
  feed->params = std::move(params);
  feed->backend = &backend;
  // Enough items in flight to keep every worker of the backend busy (while
  // others download), no more: the rest wait here, cancellable.
  const std::size_t in_flight =
      std::max<std::size_t>(2, 2 * static_cast<std::size_t>(std::max(1, backend.stats().workers)));
  std::size_t bytes = 0;
  for (const BatchInput& input : feed->inputs) bytes += input.bytes.size();
  {
    std::lock_guard lock(state_->mutex);
    if (state_->queued_items + feed->inputs.size() > state_->options.max_queued_items ||
        state_->queued_bytes + bytes > state_->options.max_queued_bytes) {
      return Error{ErrorCode::queue_full, "too much batch work is waiting (" +
                                              std::to_string(state_->queued_items) +
                                              " images); retry later"};
    }
    state_->queued_items += feed->inputs.size();
    state_->queued_bytes += bytes;
  }
  state_->remember(batch);  // before any item runs: the destructor will see it
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopping) {
      state_->queued_items -= feed->inputs.size();
      state_->queued_bytes -= bytes;
      batch->cancel();
      return Error{ErrorCode::shutting_down, "server is shutting down"};
    }
    for (std::size_t i = 0; i < in_flight; ++i) state_->launch_next_locked(feed);
  }
  state_->task_ready.notify_all();
  return batch;
}

std::shared_ptr<Batch> BatchRunner::find(const std::string& id) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->batches.find(id);
  return it == state_->batches.end() ? nullptr : it->second;
}

}  // namespace pixpool
