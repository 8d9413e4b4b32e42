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

// How often an idle dispatcher checks that its worker is still alive.
constexpr std::chrono::milliseconds kHealthCheckInterval{200};

// Above this, a finished job's pages are handed back to the kernel.
constexpr std::size_t kResidentBufferBytes = std::size_t{16} << 20;

// One worker process and the dispatcher thread's view of it.
struct Slot {
  WorkerProcess process;
  SharedBuffer buffer;
  bool alive = false;
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

  mutable std::mutex mutex;  // guards pids
  std::vector<long> pids;

  std::atomic<int> alive{0};
  std::atomic<std::uint64_t> restarts{0};

  Result<void> start_worker(std::size_t index);
  void retire_worker(std::size_t index, bool kill_it);
  Result<JobOutput> execute(std::size_t index, const JobSpec& job);
  Result<JobOutput> execute_once(std::size_t index, const JobSpec& job, bool& delivered);
  void dispatch_loop(std::size_t index);
  void check_idle_worker(std::size_t index);
};

void ProcessPoolBackend::State::check_idle_worker(std::size_t index) {
  Slot& slot = slots[index];
  if (slot.alive && !peer_gone(slot.process.socket.get())) return;
  const bool was_alive = slot.alive;
  retire_worker(index, true);
  if (start_worker(index) && was_alive) ++restarts;
}

Result<void> ProcessPoolBackend::State::start_worker(std::size_t index) {
  auto worker = zygote->spawn(WorkerSettings{options.worker_memory_mb});
  if (!worker) {
    return Error{ErrorCode::unavailable,
                 "cannot start a worker process: " + worker.error().message};
  }
  Slot& slot = slots[index];
  const int memfd = dup(worker->memfd.get());
  auto buffer = SharedBuffer::map(UniqueFd(memfd));
  if (!buffer) {
    kill(worker->pid, SIGKILL);
    return buffer.error();
  }
  slot.process = std::move(worker.value());
  slot.buffer = std::move(buffer.value());
  slot.alive = true;
  ++alive;
  std::lock_guard lock(mutex);
  pids[index] = slot.process.pid;
  return {};
}

void ProcessPoolBackend::State::retire_worker(std::size_t index, bool kill_it) {
  Slot& slot = slots[index];
  if (!slot.alive) return;
  if (kill_it) kill(slot.process.pid, SIGKILL);
  slot.process = WorkerProcess{};  // closing the socket ends an idle worker
  slot.buffer = SharedBuffer{};
  slot.alive = false;
  --alive;
  std::lock_guard lock(mutex);
  pids[index] = -1;
}

Result<JobOutput> ProcessPoolBackend::State::execute_once(std::size_t index, const JobSpec& job,
                                                          bool& delivered) {
  Slot& slot = slots[index];
  delivered = false;
  if (peer_gone(slot.process.socket.get())) {
    retire_worker(index, true);
    return Error{ErrorCode::worker_crashed, "worker died while idle"};
  }
  const std::string& input = job.input;
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
    return Error{ErrorCode::worker_crashed, "worker unreachable"};
  }
  delivered = true;

  const pid_t pid = slot.process.pid;
  const auto deadline = Clock::now() + options.job_timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      retire_worker(index, true);
      return Error{ErrorCode::timeout, "job exceeded the job timeout of " +
                                           std::to_string(options.job_timeout.count()) +
                                           " ms; worker " + std::to_string(pid) + " was killed"};
    }
    pollfd p{slot.process.socket.get(), POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (ready < 0 && errno != EINTR) {
      retire_worker(index, true);
      return Error{ErrorCode::internal, std::string("poll: ") + std::strerror(errno)};
    }
    if (ready > 0) break;
  }

  wire::Reply reply{};
  const ssize_t n = recv(slot.process.socket.get(), &reply, sizeof reply, 0);
  if (n != static_cast<ssize_t>(sizeof reply)) {
    retire_worker(index, true);
    return Error{ErrorCode::worker_crashed,
                 "worker " + std::to_string(pid) + " died while processing the job"};
  }
  // The worker decodes hostile input: its reply is untrusted input too.
  if (reply.ok == 1) {
    if (auto ok = slot.buffer.follow(reply.buffer_size); !ok) {
      retire_worker(index, true);
      return ok.error();
    }
  }
  auto answer = wire::decode_reply(reply, slot.buffer.size());
  if (!answer) {
    retire_worker(index, true);
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
  // A job that never reached a worker (it had died while idle) is not that
  // job's fault: give it one more try on a fresh worker.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!slots[index].alive) {
      if (auto ok = start_worker(index); !ok) return ok.error();
      ++restarts;
    }
    bool delivered = false;
    auto result = execute_once(index, job, delivered);
    const bool died = !slots[index].alive;
    if (died && start_worker(index)) ++restarts;  // full strength before the next job
    if (delivered || !died || attempt == 1) return result;
  }
  return Error{ErrorCode::worker_crashed, "no worker could take the job"};
}

void ProcessPoolBackend::State::dispatch_loop(std::size_t index) {
  for (;;) {
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
  for (std::size_t i = 0; i < state->slots.size(); ++i) {
    if (auto ok = state->start_worker(i); !ok) return ok.error();
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
  auto admitted = state_->queue.push(std::move(job));
  if (!admitted) return ready_error(admitted.error().code, admitted.error().message);
  return std::move(admitted.value());
}

BackendStats ProcessPoolBackend::stats() const {
  const AdmissionStats q = state_->queue.stats();
  BackendStats s;
  s.workers = state_->alive.load();
  s.busy = q.busy;
  s.queued = q.queued;
  s.completed = q.completed;
  s.failed = q.failed;
  s.abandoned = q.abandoned;
  s.restarts = state_->restarts.load();
  std::lock_guard lock(state_->mutex);
  for (long pid : state_->pids) {
    if (pid > 0) s.worker_pids.push_back(pid);
  }
  return s;
}

bool ProcessPoolBackend::ready() const {
  return !state_->queue.stopping() &&
         state_->alive.load() == static_cast<int>(state_->slots.size());
}

bool ProcessPoolBackend::healthy() const {
  return state_->zygote->alive();
}

void ProcessPoolBackend::shutdown() {
  state_->queue.stop();
  for (auto& t : state_->dispatchers) {
    if (t.joinable()) t.join();
  }
}

}  // namespace pixpool
