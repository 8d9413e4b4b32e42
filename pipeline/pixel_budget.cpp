#include "pipeline/pixel_budget.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "filters/image_format.hpp"

namespace pixpool {

PixelBudget::PixelBudget(std::uint64_t capacity)
    : capacity_(std::max<std::uint64_t>(capacity, 1)) {}

std::unique_ptr<PixelBudget::Reservation> PixelBudget::reserve(
    std::uint64_t pixels, std::chrono::steady_clock::time_point deadline, CancelToken* cancel) {
  pixels = std::min(pixels, capacity_);
  std::unique_lock lock(mutex_);
  const std::uint64_t ticket = next_ticket_++;
  auto my_turn_with_room = [&] { return serving_ == ticket && in_flight_ + pixels <= capacity_; };
  if (!my_turn_with_room()) {
    ++waiting_;
    ++waited_total_;
    bool admitted = false;
    for (;;) {
      const auto slice =
          cancel == nullptr
              ? deadline
              : std::min(deadline, std::chrono::steady_clock::now() + kCancelCheckInterval);
      admitted = room_.wait_until(lock, slice, my_turn_with_room);
      if (admitted || std::chrono::steady_clock::now() >= deadline) break;
      if (cancel == nullptr) continue;
      // The probe may make system calls: not under the lock.
      lock.unlock();
      const bool gone = cancel->check();
      lock.lock();
      if (gone) break;
      admitted = my_turn_with_room();
      if (admitted) break;
    }
    --waiting_;
    if (!admitted) {
      if (cancel == nullptr || !cancel->cancelled()) ++refused_total_;
      // Give up our place in the line. Tickets are served in order, so when
      // ours is the one being served, pass the turn on; otherwise mark it so
      // the turn skips over it.
      abandoned_.push_back(ticket);
      advance_locked();
      room_.notify_all();
      return nullptr;
    }
  }
  in_flight_ += pixels;
  ++serving_;
  advance_locked();
  room_.notify_all();  // the next in line may fit as well
  return std::make_unique<Reservation>(*this, pixels);
}

void PixelBudget::advance_locked() {
  // Skip the turns of waiters that gave up.
  for (auto it = std::find(abandoned_.begin(), abandoned_.end(), serving_); it != abandoned_.end();
       it = std::find(abandoned_.begin(), abandoned_.end(), serving_)) {
    abandoned_.erase(it);
    ++serving_;
  }
}

void PixelBudget::release(std::uint64_t pixels) {
  {
    std::lock_guard lock(mutex_);
    in_flight_ -= pixels;
  }
  room_.notify_all();
}

PixelBudgetStats PixelBudget::stats() const {
  std::lock_guard lock(mutex_);
  return {capacity_, in_flight_, waiting_, waited_total_, refused_total_};
}

BudgetedBackend::BudgetedBackend(std::unique_ptr<Backend> inner,
                                 std::shared_ptr<PixelBudget> budget,
                                 std::chrono::milliseconds max_wait)
    : inner_(std::move(inner)), budget_(std::move(budget)), max_wait_(max_wait) {}

std::future<Result<JobOutput>> BudgetedBackend::submit(JobSpec job) {
  auto header = read_header(job.input);
  if (!header || header->pixels() > job.params.max_pixels) return inner_->submit(std::move(job));
  const std::uint64_t pixels = header->pixels();
  auto reservation =
      budget_->reserve(pixels, std::chrono::steady_clock::now() + max_wait_, job.cancel.get());
  if (!reservation && job.cancel != nullptr && job.cancel->cancelled()) {
    abandoned_.fetch_add(1);
    return ready_error(ErrorCode::client_gone,
                       "the client went away while the job waited for memory; not run");
  }
  if (!reservation) {
    const auto s = budget_->stats();
    return ready_error(ErrorCode::queue_full, "server is at its memory budget (" +
                                                  std::to_string(s.in_flight / 1000000) + " of " +
                                                  std::to_string(s.capacity / 1000000) +
                                                  " megapixels in flight); retry later");
  }
  // Hold the reservation until the result is ready: the job's pixels live
  // until then. The deferred future runs in the caller's get(), where it
  // keeps asking the job's cancel token (get_unless_gone).
  std::shared_ptr<CancelToken> cancel = job.cancel;
  auto inner = inner_->submit(std::move(job));
  return std::async(std::launch::deferred,
                    [inner = std::move(inner), reservation = std::move(reservation),
                     cancel = std::move(cancel)]() mutable {
                      Result<JobOutput> result = get_unless_gone(std::move(inner), cancel.get());
                      reservation.reset();
                      return result;
                    });
}

}  // namespace pixpool

namespace pixpool {

BackendStats BudgetedBackend::stats() const {
  BackendStats s = inner_->stats();
  s.abandoned += abandoned_.load();
  return s;
}

}  // namespace pixpool
