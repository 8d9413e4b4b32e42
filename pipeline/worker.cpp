// The worker process: maps its shared buffer, then runs jobs until the
// server closes the socket. Exits with _exit only: it is a fork of the
// server and must not run the server's static destructors.

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <opencv2/core.hpp>

#include "pipeline/job.hpp"
#include "pipeline/shared_buffer.hpp"
#include "pipeline/strip_runner.hpp"
#include "pipeline/worker_protocol.hpp"
#include "pipeline/zygote.hpp"

namespace pixpool {
namespace {

constexpr std::size_t kOutputAlignment = 64;

wire::Reply run_request(const wire::Request& request, SharedBuffer& buffer) {
  if (auto ok = buffer.follow(request.buffer_size); !ok) {
    return wire::error_reply(
        {ErrorCode::out_of_memory, "worker cannot map its buffer: " + ok.error().message},
        buffer.size());
  }
  auto params = wire::decode_request(request, buffer.size());
  if (!params) return wire::error_reply(params.error(), buffer.size());
  auto result = run_job(std::string_view(buffer.data(), request.input_size), *params,
                        tbb_strip_runner(request.strips));
  if (!result) return wire::error_reply(result.error(), buffer.size());

  const std::size_t offset =
      (request.input_size + kOutputAlignment - 1) / kOutputAlignment * kOutputAlignment;
  const std::string& bytes = result->bytes;
  if (auto ok = buffer.grow_to(offset + bytes.size()); !ok) {
    return wire::error_reply(
        {ErrorCode::out_of_memory, "worker cannot grow its buffer: " + ok.error().message},
        buffer.size());
  }
  std::memcpy(buffer.data() + offset, bytes.data(), bytes.size());
  return wire::output_reply(*result, offset, buffer.size());
}

}  // namespace

void worker_main(UniqueFd socket, UniqueFd memfd, const WorkerSettings& settings) {
  prctl(PR_SET_NAME, "pixpool-worker");
  if (settings.memory_mb > 0) {
    const rlim_t bytes = static_cast<rlim_t>(settings.memory_mb) << 20;
    const rlimit limit{bytes, bytes};
    setrlimit(RLIMIT_AS, &limit);
  }
  // The pool's parallelism is its process count: one thread per worker.
  cv::setNumThreads(1);

  auto buffer = SharedBuffer::map(std::move(memfd));
  if (!buffer) _exit(3);
  for (;;) {
    wire::Request request{};
    const ssize_t n = recv(socket.get(), &request, sizeof request, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) _exit(0);  // the server closed the pool
    if (n != static_cast<ssize_t>(sizeof request)) _exit(2);
    const wire::Reply reply = run_request(request, *buffer);
    if (send(socket.get(), &reply, sizeof reply, MSG_NOSIGNAL) !=
        static_cast<ssize_t>(sizeof reply)) {
      _exit(0);
    }
  }
}

}  // namespace pixpool
