#include "pipeline/process_pool_backend.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "pipeline/admission_queue.hpp"
#include "pipeline/shared_buffer.hpp"
#include "pipeline/worker_protocol.hpp"

namespace pixpool {
namespace {

using Clock = std::chrono::steady_clock;

// How often an idle dispatcher checks that its worker is still alive, and
// how long it waits for a zygote before looking at the queue again.
constexpr std::chrono::milliseconds kHealthCheckInterval{100};

// How long a job waits for a worker while the pool refills (e.g. while the
// zygote is replaced) before it fails with unavailable.
constexpr std::chrono::seconds kWorkerWait{5};

// Reruns of one job after its worker died with the zygote (not its fault);
// a bound all the same, so no job can loop forever.
constexpr int kMaxZygoteLosses = 8;

// Above this, a finished job's pages are handed back to the kernel.
constexpr std::size_t kResidentBufferBytes = std::size_t{16} << 20;

// One worker process and the dispatcher thread's view of it.
struct Slot {
  WorkerProcess process;
  SharedBuffer buffer;
  bool alive = false;
  bool ever_started = false;
};

// How one attempt at a job ended.
enum class Outcome {
  done,           // the worker answered (an image or the job's own error)
  not_delivered,  // the worker was gone before it got the job
  died,           // the worker died after it got the job
  killed,         // we killed the worker (timeout, bad reply): not retried
};

// True when the worker's end is closed (it died while idle) or it sent
// something unasked.
bool peer_gone(int socket) {
  pollfd p{socket, POLLIN, 0};
  return poll(&p, 1, 0) != 0;
}

}  // namespace

struct ProcessPoolBackend::State {
  explicit State(const ProcessPoolOptions& o) : options(o), queue("process", o.max_pending) {}

  ProcessPoolOptions options;
  AdmissionQueue queue;
  std::shared_ptr<Zygote> zygote;
  std::vector<Slot> slots;
  std::vector<std::thread> dispatchers;

  mutable std::mutex mutex;  // guards pids and generations
  std::vector<long> pids;
  // Per slot, the zygote generation its live worker came from (0: none).
  // Workers die with their zygote, so only the current generation counts as
  // alive, even before the slot's dispatcher has noticed the death.
  std::vector<std::uint64_t> generations;

  std::atomic<int> alive{0};
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> retried{0};

  Result<void> start_worker(std::size_t index, Clock::time_point deadline);
  void retire_worker(std::size_t index, bool kill_it);
  Result<JobOutput> execute(std::size_t index, const JobSpec& job);
  Result<JobOutput> execute_once(std::size_t index, const JobSpec& job, Outcome& outcome);
  void dispatch_loop(std::size_t index);
  void check_idle_worker(std::size_t index);
  BackendState state() const;
  int live_workers(const ZygoteStatus& z) const;
};

int ProcessPoolBackend::State::live_workers(const ZygoteStatus& z) const {
  if (!z.up) return 0;
  std::lock_guard lock(mutex);
  return static_cast<int>(std::count(generations.begin(), generations.end(), z.generation));
}

BackendState ProcessPoolBackend::State::state() const {
  BackendState s;
  if (queue.stopping()) {
    s.health = BackendHealth::unavailable;
    s.reason = "shutting down";
    return s;
  }
  const ZygoteStatus z = zygote->status();
  const int live = live_workers(z);
  const int size = static_cast<int>(slots.size());
  if (live == size && z.up) return s;
  // Until workers exist again: the zygote's estimate plus a refill step.
  s.available_in =
      z.available_in + (live > 0 ? std::chrono::milliseconds{0} : kHealthCheckInterval);
  if (!z.up) {
    s.reason = "the worker zygote is being replaced";
    if (z.failed_starts > 0) {
      s.reason += " (" + std::to_string(z.failed_starts) + " failed start" +
                  (z.failed_starts > 1 ? "s" : "") + ": " + z.last_error + ")";
    }
  } else {
    s.reason = std::to_string(live) + " of " + std::to_string(size) + " workers alive, refilling";
  }
  if (live > 0) {
    s.health = BackendHealth::degraded;
    s.available_in = std::chrono::milliseconds{0};
  } else if (z.up || z.failed_starts == 0) {
    s.health = BackendHealth::recovering;
  } else {
    s.health = BackendHealth::unavailable;
  }
  return s;
}

void ProcessPoolBackend::State::check_idle_worker(std::size_t index) {
  Slot& slot = slots[index];
  if (slot.alive && !peer_gone(slot.process.socket.get())) return;
  retire_worker(index, true);
  // Waits for a zygote at most one interval: the loop comes back here.
  (void)start_worker(index, Clock::now() + kHealthCheckInterval);
}

Result<void> ProcessPoolBackend::State::start_worker(std::size_t index,
                                                     Clock::time_point deadline) {
  auto worker = zygote->spawn(WorkerSettings{options.worker_memory_mb}, deadline);
  if (!worker) {
    return Error{ErrorCode::unavailable,
                 "cannot start a worker process: " + worker.error().message};
  }
  Slot& slot = slots[index];
  auto buffer = SharedBuffer::map(std::move(worker->memfd));
  if (!buffer) {
    (void)kill(worker->pid, SIGKILL);  // its zygote reaps it
    return buffer.error();
  }
  slot.process = std::move(worker.value());
  slot.buffer = std::move(buffer.value());
  slot.alive = true;
  if (slot.ever_started) ++restarts;
  slot.ever_started = true;
  ++alive;
  std::lock_guard lock(mutex);
  pids[index] = slot.process.pid;
  generations[index] = slot.process.generation;
  return {};
}

void ProcessPoolBackend::State::retire_worker(std::size_t index, bool kill_it) {
  Slot& slot = slots[index];
  if (!slot.alive) return;
  if (kill_it) (void)kill(slot.process.pid, SIGKILL);
  slot.process = WorkerProcess{};  // closing the socket ends an idle worker
  slot.buffer = SharedBuffer{};
  slot.alive = false;
  --alive;
  std::lock_guard lock(mutex);
  pids[index] = -1;
  generations[index] = 0;
}

Result<JobOutput> ProcessPoolBackend::State::execute_once(std::size_t index, const JobSpec& job,
                                                          Outcome& outcome) {
  Slot& slot = slots[index];
  outcome = Outcome::not_delivered;
  if (peer_gone(slot.process.socket.get())) {
    retire_worker(index, true);
    return Error{ErrorCode::worker_crashed, "worker died while idle"};
  }
  const std::string& input = job.input;
  outcome = Outcome::done;
  if (auto ok = slot.buffer.grow_to(input.size()); !ok) return ok.error();
  std::memcpy(slot.buffer.data(), input.data(), input.size());
  // Cores whose workers sit idle may help with this image's filter strips.
  // Not under --worker-memory-mb: helper threads' stacks and malloc arenas
  // would count against the cap and fail jobs that fit single-threaded.
  const auto idle = static_cast<int>(alive.load()) - static_cast<int>(queue.stats().busy);
  const int strips = options.worker_memory_mb > 0 ? 1 : 1 + std::max(0, idle);
  auto made = wire::make_request(job.params, input.size(), slot.buffer.size(), strips);
  if (!made) return made.error();
  const wire::Request& request = *made;
  if (send(slot.process.socket.get(), &request, sizeof request, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(sizeof request)) {
    retire_worker(index, true);
    outcome = Outcome::not_delivered;
    return Error{ErrorCode::worker_crashed, "worker unreachable"};
  }

  const pid_t pid = slot.process.pid;
  const auto deadline = Clock::now() + options.job_timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      retire_worker(index, true);
      outcome = Outcome::killed;
      return Error{ErrorCode::timeout, "job exceeded the job timeout of " +
                                           std::to_string(options.job_timeout.count()) +
                                           " ms; worker " + std::to_string(pid) + " was killed"};
    }
    pollfd p{slot.process.socket.get(), POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) {
      retire_worker(index, true);
      outcome = Outcome::killed;
      return Error{ErrorCode::internal, std::string("poll: ") + std::strerror(errno)};
    }
    if (ready > 0) break;
  }

  wire::Reply reply{};
  const ssize_t n = recv(slot.process.socket.get(), &reply, sizeof reply, 0);
  if (n != static_cast<ssize_t>(sizeof reply)) {
    retire_worker(index, true);
    outcome = Outcome::died;
    return Error{ErrorCode::worker_crashed,
                 "worker " + std::to_string(pid) + " died while processing the job"};
  }
  // The worker decodes hostile input: its reply is untrusted input too.
  if (reply.ok == 1) {
    if (auto ok = slot.buffer.follow(reply.buffer_size); !ok) {
      retire_worker(index, true);
      outcome = Outcome::killed;
      return ok.error();
    }
  }
  auto answer = wire::decode_reply(reply, slot.buffer.size());
  if (!answer) {
    retire_worker(index, true);
    outcome = Outcome::killed;
    return answer.error();
  }
  if (!answer->ok()) return answer->error();
  const wire::ReplyOutput& output = answer->value();
  JobOutput out;
  out.bytes.assign(slot.buffer.data() + output.offset, output.size);
  out.format = output.format;
  out.width = output.width;
  out.height = output.height;
  out.times = output.times;
  slot.buffer.release_above(kResidentBufferBytes);
  return out;
}

Result<JobOutput> ProcessPoolBackend::State::execute(std::size_t index, const JobSpec& job) {
  // Deaths this job may have caused (its worker died and the zygote did
  // not), deaths the zygote caused, and workers found dead before delivery.
  int crashes = 0;
  int zygote_losses = 0;
  int undelivered = 0;
  std::vector<pid_t> dead;
  for (;;) {
    if (!slots[index].alive) {
      // A bounded wait while the pool refills (a new zygote, a fresh worker).
      if (auto ok = start_worker(index, Clock::now() + kWorkerWait); !ok) {
        BackendState s = state();
        s.reason = ok.error().message;
        return unavailable_error("process", s);
      }
    }
    const pid_t pid = slots[index].process.pid;
    const std::uint64_t generation = slots[index].process.generation;
    Outcome outcome = Outcome::done;
    auto result = execute_once(index, job, outcome);
    switch (outcome) {
      case Outcome::done:
      case Outcome::killed:
        return result;
      case Outcome::not_delivered:
        // Not the job's fault: it never reached the worker.
        if (++undelivered > 3) return result;
        continue;
      case Outcome::died:
        dead.push_back(pid);
        if (zygote->lost(generation) && zygote_losses < kMaxZygoteLosses) {
          ++zygote_losses;
        } else if (++crashes >= 2) {
          std::string listed;
          for (pid_t p : dead) listed += (listed.empty() ? "" : ", ") + std::to_string(p);
          return Error{ErrorCode::worker_crashed,
                       "the job killed two worker processes (" + listed + "); not retried again"};
        }
        ++retried;
        continue;
    }
  }
}

void ProcessPoolBackend::State::dispatch_loop(std::size_t index) {
  for (;;) {
    // Full strength before the next job: replace a worker that died.
    if (!slots[index].alive && !queue.stopping()) {
      (void)start_worker(index, Clock::now() + kHealthCheckInterval);
    }
    auto queued = queue.take(kHealthCheckInterval);
    if (!queued) {
      if (queue.closed()) return;  // stopping and drained
      // Idle: notice a worker killed by hand or by the OOM killer now, not
      // when the next job arrives, so readiness tells the truth.
      check_idle_worker(index);
      continue;
    }
    Result<JobOutput> result = execute(index, queued->job);
    queue.finish(*queued, std::move(result));
  }
}

Result<std::unique_ptr<ProcessPoolBackend>> ProcessPoolBackend::create(
    ProcessPoolOptions options, std::shared_ptr<Zygote> zygote) {
  if (options.workers <= 0) {
    options.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto state = std::make_unique<State>(options);
  state->zygote = std::move(zygote);
  state->slots.resize(static_cast<std::size_t>(options.workers));
  state->pids.assign(state->slots.size(), -1);
  state->generations.assign(state->slots.size(), 0);
  for (std::size_t i = 0; i < state->slots.size(); ++i) {
    if (auto ok = state->start_worker(i, Clock::now() + kWorkerWait); !ok) return ok.error();
  }
  for (std::size_t i = 0; i < state->slots.size(); ++i) {
    state->dispatchers.emplace_back([s = state.get(), i] { s->dispatch_loop(i); });
  }
  return std::unique_ptr<ProcessPoolBackend>(new ProcessPoolBackend(std::move(state)));
}

ProcessPoolBackend::ProcessPoolBackend(std::unique_ptr<State> state) : state_(std::move(state)) {}

ProcessPoolBackend::~ProcessPoolBackend() {
  shutdown();
  for (std::size_t i = 0; i < state_->slots.size(); ++i) state_->retire_worker(i, false);
}

std::future<Result<JobOutput>> ProcessPoolBackend::submit(JobSpec job) {
  // Refused at once, with a true estimate, when no worker can come soon.
  if (const BackendState s = state_->state();
      s.health == BackendHealth::unavailable && !state_->queue.stopping()) {
    const Error error = unavailable_error("process", s);
    return ready_error(error.code, error.message);
  }
  auto admitted = state_->queue.push(std::move(job));
  if (!admitted) return ready_error(admitted.error().code, admitted.error().message);
  return std::move(admitted.value());
}

BackendStats ProcessPoolBackend::stats() const {
  const AdmissionStats q = state_->queue.stats();
  BackendStats s;
  s.workers = state_->live_workers(state_->zygote->status());
  s.busy = q.busy;
  s.queued = q.queued;
  s.completed = q.completed;
  s.failed = q.failed;
  s.abandoned = q.abandoned;
  s.restarts = state_->restarts.load();
  s.retried = state_->retried.load();
  s.zygote_restarts = state_->zygote->status().replacements;
  s.state = state_->state();
  std::lock_guard lock(state_->mutex);
  for (long pid : state_->pids) {
    if (pid > 0) s.worker_pids.push_back(pid);
  }
  return s;
}

bool ProcessPoolBackend::ready() const {
  return state_->state().health == BackendHealth::ready;
}

void ProcessPoolBackend::shutdown() {
  state_->queue.stop();
  for (auto& t : state_->dispatchers) {
    if (t.joinable()) t.join();
  }
}

}  // namespace pixpool
