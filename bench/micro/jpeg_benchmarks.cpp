// Google Benchmark microbenchmarks of the JPEG codec (filters/jpeg_codec.hpp)
// at 1080p and 12 MP: TurboJPEG's encode (what encode_image used before)
// against encode_jpeg serial and in strips on every hardware thread; decode
// at full size against 1/2, 1/4 and 1/8; and the strip-parallel decode of a
// file with restart markers against its serial decode. Wall-clock times.
// The strip benchmarks also count each strip's thread CPU time: on a machine
// whose other cores are busy, wall time shows no gain, and strip_max_ms
// (the longest strip per image) with strip_sum_ms (all strips, overlap
// included) still tell what idle cores would give.
//
//   build/release/bench/pixpool_microbench --benchmark_filter=Jpeg
//
// main() is stage_benchmarks.cpp's (OpenCV pinned to one thread).

#include <benchmark/benchmark.h>
#include <turbojpeg.h>

#include <algorithm>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/corpus.hpp"
#include "filters/jpeg_codec.hpp"
#include "pipeline/strip_runner.hpp"

namespace {

struct JpegSize {
  const char* label;
  int width;
  int height;
};
constexpr JpegSize kJpegSizes[] = {{"1080p", 1920, 1080}, {"12mp", 4032, 3024}};
constexpr int kQuality = 90;

// Per size: the photo, a plain JPEG of it (cv::imencode, no restart markers)
// and one from encode_jpeg (a restart marker per MCU row). Made once.
struct JpegSample {
  cv::Mat pixels;
  std::string plain;
  std::string restarts;
};

const JpegSample& jpeg_sample(int index) {
  static std::map<int, JpegSample> cache;
  auto it = cache.find(index);
  if (it != cache.end()) return it->second;
  const JpegSize& s = kJpegSizes[index];
  JpegSample out;
  out.pixels = pixpool::bench::synthetic_photo(s.width, s.height, 7);
  std::vector<uchar> buffer;
  cv::imencode(".jpg", out.pixels, buffer, {cv::IMWRITE_JPEG_QUALITY, kQuality});
  out.plain.assign(buffer.begin(), buffer.end());
  out.restarts = pixpool::encode_jpeg(out.pixels, kQuality).value();
  return cache.emplace(index, std::move(out)).first->second;
}

int hardware_threads() {
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

// Per-strip thread CPU times, summed over the benchmark's iterations.
struct StripTimes {
  std::mutex mutex;
  double max_ms = 0;  // the longest strip of each image, summed
  double sum_ms = 0;  // every strip
  double image_max_ms = 0;

  // A runner that times each strip `inner` runs; call finish_image() after each image.
  pixpool::StripRunner wrap(const pixpool::StripRunner& inner) {
    return [this, inner](int rows, int min_rows, const std::function<void(int, int)>& body) {
      inner(rows, min_rows, [&](int begin, int end) {
        const double start = thread_cpu_ms();
        body(begin, end);
        const double ms = thread_cpu_ms() - start;
        const std::lock_guard lock(mutex);
        sum_ms += ms;
        image_max_ms = std::max(image_max_ms, ms);
      });
    };
  }
  void finish_image() {
    max_ms += image_max_ms;
    image_max_ms = 0;
  }
  void report(benchmark::State& state) const {
    const auto n = static_cast<double>(state.iterations());
    state.counters["strip_max_ms"] = max_ms / n;
    state.counters["strip_sum_ms"] = sum_ms / n;
  }
};

void label(benchmark::State& state, const std::string& extra = "") {
  const JpegSize& s = kJpegSizes[state.range(0)];
  state.SetLabel(extra.empty() ? s.label : std::string(s.label) + " " + extra);
  state.counters["Mpix/s"] = benchmark::Counter(static_cast<double>(s.width) * s.height / 1e6,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void BM_JpegEncodeTurboJpeg(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  tjhandle tj = tjInitCompress();
  for (auto _ : state) {
    unsigned char* out = nullptr;
    unsigned long size = 0;
    tjCompress2(tj, s.pixels.data, s.pixels.cols, static_cast<int>(s.pixels.step), s.pixels.rows,
                TJPF_BGR, &out, &size, TJSAMP_420, kQuality, 0);
    benchmark::DoNotOptimize(size);
    tjFree(out);
  }
  tjDestroy(tj);
  label(state);
}

void BM_JpegEncodeSerial(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::encode_jpeg(s.pixels, kQuality));
  label(state);
}

void BM_JpegEncodeStrips(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  StripTimes times;
  const pixpool::StripRunner strips = times.wrap(pixpool::tbb_strip_runner(hardware_threads()));
  for (auto _ : state) {
    benchmark::DoNotOptimize(pixpool::encode_jpeg(s.pixels, kQuality, strips));
    times.finish_image();
  }
  times.report(state);
  label(state, std::to_string(hardware_threads()) + " strips");
}

void BM_JpegDecodeTurboJpeg(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  tjhandle tj = tjInitDecompress();
  std::vector<unsigned char> pixels(static_cast<std::size_t>(s.pixels.total()) * 3);
  auto* data = reinterpret_cast<const unsigned char*>(s.plain.data());
  for (auto _ : state) {
    tjDecompress2(tj, data, s.plain.size(), pixels.data(), s.pixels.cols, 0, s.pixels.rows,
                  TJPF_BGR, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS);
    benchmark::DoNotOptimize(pixels.data());
  }
  tjDestroy(tj);
  label(state);
}

// range(1): scale_denom.
void BM_JpegDecodeScaled(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  const int scale = static_cast<int>(state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::decode_jpeg(s.plain, scale));
  label(state, "1/" + std::to_string(scale));
}

// range(1): scale_denom. The file has restart markers; serial decode.
void BM_JpegDecodeRestartsSerial(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  const int scale = static_cast<int>(state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::decode_jpeg(s.restarts, scale));
  label(state, "1/" + std::to_string(scale));
}

// range(1): scale_denom. The same file in strips on every hardware thread.
void BM_JpegDecodeRestartsStrips(benchmark::State& state) {
  const JpegSample& s = jpeg_sample(static_cast<int>(state.range(0)));
  const int scale = static_cast<int>(state.range(1));
  StripTimes times;
  const pixpool::StripRunner strips = times.wrap(pixpool::tbb_strip_runner(hardware_threads()));
  pixpool::detail::JpegDecodePath path{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(pixpool::detail::decode_jpeg(s.restarts, scale, strips, &path));
    times.finish_image();
  }
  times.report(state);
  if (path != pixpool::detail::JpegDecodePath::strips && hardware_threads() > 1) {
    state.SkipWithError("the file did not decode in strips");
  }
  label(state,
        "1/" + std::to_string(scale) + ", " + std::to_string(hardware_threads()) + " strips");
}

void jpeg_sizes(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 2; ++i) b->Arg(i);
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void jpeg_sizes_and_scales(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 2; ++i) {
    for (int scale : {1, 2, 4, 8}) b->Args({i, scale});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void jpeg_sizes_full_and_half(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 2; ++i) {
    for (int scale : {1, 2}) b->Args({i, scale});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_JpegEncodeTurboJpeg)->Apply(jpeg_sizes);
BENCHMARK(BM_JpegEncodeSerial)->Apply(jpeg_sizes);
BENCHMARK(BM_JpegEncodeStrips)->Apply(jpeg_sizes);
BENCHMARK(BM_JpegDecodeTurboJpeg)->Apply(jpeg_sizes);
BENCHMARK(BM_JpegDecodeScaled)->Apply(jpeg_sizes_and_scales);
BENCHMARK(BM_JpegDecodeRestartsSerial)->Apply(jpeg_sizes_full_and_half);
BENCHMARK(BM_JpegDecodeRestartsStrips)->Apply(jpeg_sizes_full_and_half);
