// pixpool: entry point. Order matters: signals are blocked before any thread
// exists, so every thread inherits the mask and only the signal thread sees
// SIGTERM/SIGINT.

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/backend.hpp"
#include "pipeline/tbb_backend.hpp"
#include "service/config.hpp"
#include "service/server.hpp"

#ifndef PIXPOOL_VERSION
#define PIXPOOL_VERSION "dev"
#endif

int main(int argc, char** argv) {
  using namespace pixpool;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto cli = parse_command_line(args, [](const char* name) { return std::getenv(name); });
  if (!cli) {
    std::fprintf(stderr, "pixpool: %s\n", cli.error().message.c_str());
    return 2;
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

  std::signal(SIGPIPE, SIG_IGN);  // a client hanging up must not kill the server
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // internal wake-up, see below
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  BackendSet backends;
  backends.add(std::make_unique<TbbBackend>(
      TbbBackendOptions{config.tbb_threads, config.max_queue}));

  Server server(config, backends);
  auto port = server.bind();
  if (!port) {
    std::fprintf(stderr, "pixpool: %s\n", port.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "pixpool %s listening on http://%s:%d (backends: %s; default %s)\n",
               PIXPOOL_VERSION, config.host.c_str(), *port, backends.names().c_str(),
               config.default_backend.c_str());

  std::thread signal_thread([&] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    if (signal_number != SIGUSR1) {
      std::fprintf(stderr, "pixpool: %s received, finishing in-flight requests\n",
                   signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    server.stop();
  });

  const bool served = server.run();
  // run() returned: either a stop signal arrived or the listener failed. Wake
  // the signal thread in the latter case so it can be joined.
  pthread_kill(signal_thread.native_handle(), SIGUSR1);
  signal_thread.join();

  for (const auto& backend : backends.all()) backend->shutdown();
  std::fprintf(stderr, "pixpool: stopped\n");
  return served ? 0 : 1;
}
