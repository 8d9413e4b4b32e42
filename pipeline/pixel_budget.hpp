#pragma once
// Memory admission: a budget of decoded pixels in flight, shared by every
// backend of the server.
//
// What an image costs in memory is set by its pixel count, not by its upload
// size: a 4 MB JPEG of 12 MP decodes to 36 MB and the filters write another
// 36 MB. A request limit alone cannot bound that (64 concurrent 12 MP uploads
// would need 4.6 GB), so every job first reserves its width x height, read
// from the image header before anything is decoded. When the budget is spent,
// a job waits for running ones to finish, up to a deadline, and is then
// refused with queue_full (429); it never runs out of memory.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "pipeline/backend.hpp"
#include "pipeline/cancellation.hpp"

namespace pixpool {

struct PixelBudgetStats {
  std::uint64_t capacity = 0;       // pixels
  std::uint64_t in_flight = 0;      // pixels reserved now
  std::uint64_t waiting = 0;        // jobs waiting for room now
  std::uint64_t waited_total = 0;   // jobs that had to wait (ever)
  std::uint64_t refused_total = 0;  // jobs refused after waiting (ever)
};

class PixelBudget {
 public:
  // capacity: pixels in flight across all jobs (> 0).
  explicit PixelBudget(std::uint64_t capacity);

  // Returns a reservation of `pixels` or nullptr when none could be made by
  // `deadline`, or when `cancel` (may be null) is cancelled while waiting:
  // it is checked (CancelToken::check) every kCancelCheckInterval. Requests
  // larger than the capacity are clamped to it, so such an image runs alone
  // rather than never. First come, first served: a large image is not
  // starved by a stream of small ones.
  class Reservation;
  std::unique_ptr<Reservation> reserve(std::uint64_t pixels,
                                       std::chrono::steady_clock::time_point deadline,
                                       CancelToken* cancel = nullptr);

  PixelBudgetStats stats() const;

 private:
  void release(std::uint64_t pixels);
  void advance_locked();  // moves serving_ past abandoned tickets

  const std::uint64_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable room_;
  std::uint64_t in_flight_ = 0;
  std::uint64_t next_ticket_ = 0;         // FIFO order among waiters
  std::uint64_t serving_ = 0;             // ticket allowed to take room next
  std::vector<std::uint64_t> abandoned_;  // tickets whose waiters timed out
  std::uint64_t waiting_ = 0;
  std::uint64_t waited_total_ = 0;
  std::uint64_t refused_total_ = 0;
};

class PixelBudget::Reservation {
 public:
  Reservation(PixelBudget& budget, std::uint64_t pixels) : budget_(budget), pixels_(pixels) {}
  ~Reservation() { budget_.release(pixels_); }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;

 private:
  PixelBudget& budget_;
  std::uint64_t pixels_;
};

// A Backend that admits each job against a shared PixelBudget before handing
// it to `inner`, and holds the reservation until the job's result is ready.
// Jobs whose header cannot be read, or that are over `max_pixels` (decode
// refuses those before allocating), pass straight through.
// Errors: queue_full when no room came up within `max_wait`; client_gone
// when job.cancel was cancelled while it waited for room; else inner's.
// stats().abandoned adds the jobs dropped here to inner's.
class BudgetedBackend final : public Backend {
 public:
  BudgetedBackend(std::unique_ptr<Backend> inner, std::shared_ptr<PixelBudget> budget,
                  std::chrono::milliseconds max_wait);

  std::string_view name() const override { return inner_->name(); }
  std::future<Result<JobOutput>> submit(JobSpec job) override;
  BackendStats stats() const override;
  bool ready() const override { return inner_->ready(); }
  bool healthy() const override { return inner_->healthy(); }
  void shutdown() override { inner_->shutdown(); }

 private:
  std::unique_ptr<Backend> inner_;
  std::shared_ptr<PixelBudget> budget_;
  std::chrono::milliseconds max_wait_;
  std::atomic<std::uint64_t> abandoned_{0};  // cancelled while waiting for room
};

}  // namespace pixpool
