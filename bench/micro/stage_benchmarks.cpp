// Google Benchmark microbenchmarks of each pipeline stage and of the whole
// pipeline, at VGA, 1080p and 12 MP, next to the codec floor (TurboJPEG
// decode + encode of the same image). Single-threaded: OpenCV is pinned to
// one thread so stage costs add up to what one core does per image.
//
//   build/release/bench/pixpool_microbench --benchmark_counters_tabular=true
//
// Figures and their reading live in docs/performance.md.

#include <benchmark/benchmark.h>
#include <oneapi/tbb/task_arena.h>
#include <turbojpeg.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench/corpus.hpp"
#include "core/malloc_tuning.hpp"
#include "filters/band_limited.hpp"
#include "filters/blur.hpp"
#include "filters/buffer_pool.hpp"
#include "filters/codec.hpp"
#include "filters/contour.hpp"
#include "filters/op_chain.hpp"
#include "pipeline/job.hpp"
#include "pipeline/strip_runner.hpp"

namespace {

struct Size {
  const char* label;
  int width;
  int height;
};
constexpr Size kSizes[] = {{"vga", 640, 480}, {"1080p", 1920, 1080}, {"12mp", 4032, 3024}};

// One JPEG (quality 90) and its decoded pixels per size, made once.
struct Sample {
  std::string jpeg;
  cv::Mat pixels;
};

const Sample& sample(int index) {
  static std::map<int, Sample> cache;
  auto it = cache.find(index);
  if (it != cache.end()) return it->second;
  const Size& s = kSizes[index];
  const cv::Mat photo = pixpool::bench::synthetic_photo(s.width, s.height, 7);
  std::vector<uchar> buffer;
  cv::imencode(".jpg", photo, buffer, {cv::IMWRITE_JPEG_QUALITY, 90});
  Sample out{std::string(buffer.begin(), buffer.end()), {}};
  out.pixels = pixpool::decode_image(out.jpeg, pixpool::kDefaultMaxPixels)->pixels;
  return cache.emplace(index, std::move(out)).first->second;
}

void label(benchmark::State& state) {
  const Size& s = kSizes[state.range(0)];
  state.SetLabel(s.label);
  state.counters["Mpix/s"] = benchmark::Counter(static_cast<double>(s.width) * s.height / 1e6,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// JPEG in, the default chain (blur:5,contour), JPEG out at quality 90.
pixpool::JobParams default_chain() {
  pixpool::JobParams params;
  params.ops = *pixpool::parse_ops(pixpool::kDefaultOps);
  return params;
}

// One TurboJPEG decode + encode of the photo (the floor).
void codec_floor_once(const Sample& s, tjhandle d, tjhandle e, std::vector<unsigned char>& pixels) {
  auto* data = reinterpret_cast<unsigned char*>(const_cast<char*>(s.jpeg.data()));
  tjDecompress2(d, data, s.jpeg.size(), pixels.data(), s.pixels.cols, 0, s.pixels.rows, TJPF_BGR,
                0);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  tjCompress2(e, pixels.data(), s.pixels.cols, 0, s.pixels.rows, TJPF_BGR, &out, &size, TJSAMP_420,
              90, 0);
  tjFree(out);
}

void BM_CodecFloor(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  tjhandle d = tjInitDecompress(), e = tjInitCompress();
  std::vector<unsigned char> pixels(static_cast<std::size_t>(s.pixels.total()) * 3);
  for (auto _ : state) codec_floor_once(s, d, e, pixels);
  tjDestroy(d);
  tjDestroy(e);
  label(state);
  state.SetItemsProcessed(state.iterations());  // with ->Threads: the floor's all-cores rate
}

using Clock = std::chrono::steady_clock;

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The headline figure: pipeline time over codec floor time, the floor, the
// exact (full-size) pipeline and the default (band-limited) one alternating
// image by image, so that a noisy machine (shared cores, frequency changes)
// slows all alike. Counters: medians in ms and their ratios to the floor.
void BM_PipelineOverFloor(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  tjhandle d = tjInitDecompress(), e = tjInitCompress();
  std::vector<unsigned char> pixels(static_cast<std::size_t>(s.pixels.total()) * 3);
  const pixpool::JobParams params = default_chain();
  pixpool::JobParams exact = default_chain();
  exact.exact = true;
  std::vector<double> floor_ms, exact_ms, pipeline_ms;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    codec_floor_once(s, d, e, pixels);
    const auto t1 = Clock::now();
    benchmark::DoNotOptimize(pixpool::run_job(s.jpeg, exact));
    const auto t2 = Clock::now();
    benchmark::DoNotOptimize(pixpool::run_job(s.jpeg, params));
    const auto t3 = Clock::now();
    floor_ms.push_back(ms(t0, t1));
    exact_ms.push_back(ms(t1, t2));
    pipeline_ms.push_back(ms(t2, t3));
  }
  tjDestroy(d);
  tjDestroy(e);
  state.SetLabel(kSizes[state.range(0)].label);
  state.counters["floor_ms"] = median(floor_ms);
  state.counters["exact_ms"] = median(exact_ms);
  state.counters["pipeline_ms"] = median(pipeline_ms);
  state.counters["exact_ratio"] = median(exact_ms) / median(floor_ms);
  state.counters["ratio"] = median(pipeline_ms) / median(floor_ms);
}

// What libjpeg-turbo alone must do for the default chain, against the floor:
// the entropy-coded input decoded at the pipeline's scale, and the
// pipeline's own output encoded at the floor's settings (TurboJPEG, BGR,
// q90, 4:2:0), the three alternating image by image like
// BM_PipelineOverFloor. codec_ratio = (decode + encode) / floor is the
// lowest pipeline / floor ratio any filtering on top of this codec can
// reach: its headroom under a target (0.8x at 1080p, 0.7x at 12 MP) is all
// that is left for blurring, upsampling and contouring. Also the bare
// minimum (decode at 1/8, which keeps only DC, and encode of a white
// image): bare_ratio.
void BM_CodecShare(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  const int width = s.pixels.cols, height = s.pixels.rows;
  const int scale = pixpool::band_limited_scale(5.0, width, height);
  pixpool::JobParams params = default_chain();
  params.format = pixpool::ImageFormat::png;  // lossless: the pixels the JPEG encoder gets
  const auto output = pixpool::run_job(s.jpeg, params);
  const cv::Mat filtered = pixpool::decode_image(output->bytes, pixpool::kDefaultMaxPixels)->pixels;
  const cv::Mat white(s.pixels.size(), CV_8UC3, cv::Scalar::all(255));
  tjhandle d = tjInitDecompress(), e = tjInitCompress();
  std::vector<unsigned char> pixels(static_cast<std::size_t>(s.pixels.total()) * 3);
  auto* data = reinterpret_cast<unsigned char*>(const_cast<char*>(s.jpeg.data()));
  auto decode_scaled = [&](int denom) {
    tjDecompress2(d, data, s.jpeg.size(), pixels.data(), (width + denom - 1) / denom, 0,
                  (height + denom - 1) / denom, TJPF_BGR, 0);
  };
  auto encode = [&](const cv::Mat& image) {
    unsigned char* out = nullptr;
    unsigned long size = 0;
    tjCompress2(e, image.data, width, static_cast<int>(image.step), height, TJPF_BGR, &out, &size,
                TJSAMP_420, 90, 0);
    tjFree(out);
  };
  std::vector<double> floor_ms, decode_ms, encode_ms, bare_ms;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    codec_floor_once(s, d, e, pixels);
    const auto t1 = Clock::now();
    decode_scaled(scale);
    const auto t2 = Clock::now();
    encode(filtered);
    const auto t3 = Clock::now();
    decode_scaled(8);
    encode(white);
    const auto t4 = Clock::now();
    floor_ms.push_back(ms(t0, t1));
    decode_ms.push_back(ms(t1, t2));
    encode_ms.push_back(ms(t2, t3));
    bare_ms.push_back(ms(t3, t4));
  }
  tjDestroy(d);
  tjDestroy(e);
  state.SetLabel(kSizes[state.range(0)].label);
  const double floor = median(floor_ms);
  state.counters["floor_ms"] = floor;
  state.counters["decode_ms"] = median(decode_ms);
  state.counters["encode_ms"] = median(encode_ms);
  state.counters["codec_ratio"] = (median(decode_ms) + median(encode_ms)) / floor;
  state.counters["bare_ratio"] = median(bare_ms) / floor;
}

// The band-limited stage alone: blur:5 + contour from the 1/4-scale decode
// to the full-size output (filters/band_limited.hpp).
void BM_BandLimitedBlurContour(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  const int scale = pixpool::band_limited_scale(5.0, s.pixels.cols, s.pixels.rows);
  const cv::Mat small =
      pixpool::decode_image(s.jpeg, pixpool::kDefaultMaxPixels, {scale, {}, {}})->pixels;
  cv::Mat out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pixpool::band_limited_blur(small, out, 5.0, scale, s.pixels.size(),
                                                        pixpool::AfterBlur::contour));
  }
  label(state);
}

void BM_DecodeReduced(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  const int scale = pixpool::band_limited_scale(5.0, s.pixels.cols, s.pixels.rows);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        pixpool::decode_image(s.jpeg, pixpool::kDefaultMaxPixels, {scale, {}, {}}));
  }
  label(state);
}

void BM_Decode(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(pixpool::decode_image(s.jpeg, pixpool::kDefaultMaxPixels));
  }
  label(state);
}

void BM_Blur(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  cv::Mat out;
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::blur(s.pixels, out, 5.0));
  label(state);
}

void BM_Contour(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  cv::Mat out;
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::contour(s.pixels, out));
  label(state);
}

// The default chain as apply_ops runs it: blur and contour fused.
void BM_BlurContour(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  cv::Mat out;
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::blur_contour(s.pixels, out, 5.0));
  label(state);
}

void BM_Encode(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  cv::Mat filtered;
  (void)pixpool::apply_ops(s.pixels, filtered, *pixpool::parse_ops(pixpool::kDefaultOps));
  for (auto _ : state) {
    benchmark::DoNotOptimize(pixpool::encode_image(filtered, pixpool::ImageFormat::jpeg, 90));
  }
  label(state);
}

void BM_Pipeline(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  const pixpool::JobParams params = default_chain();
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::run_job(s.jpeg, params));
  label(state);
}

// The same on every core at once, one image per thread: the in-process
// all-cores rate that the HTTP benchmark is compared against (items/s).
void BM_PipelineAllCores(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  const pixpool::JobParams params = default_chain();
  for (auto _ : state) benchmark::DoNotOptimize(pixpool::run_job(s.jpeg, params));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(kSizes[state.range(0)].label);
}

// One image at a time on every core, as a lone request runs in the tbb
// backend: its decode (when the JPEG has restart markers), filter and encode
// strips spread over the cores. Arg 1: 0 = the sample as cv::imencode writes
// it (no restart markers: decoded on one core), 1 = with a restart marker
// per MCU row. The figure is the latency, to set against BM_Pipeline;
// counters: the stage times run_job reports (encode_ms includes the fused
// upsample + contour, filter_ms the reduced image's padding and blur).
void BM_PipelineLoneImage(benchmark::State& state) {
  const Sample& s = sample(static_cast<int>(state.range(0)));
  std::string jpeg = s.jpeg;
  if (state.range(1) == 1) {
    std::vector<uchar> buffer;
    cv::imencode(
        ".jpg", s.pixels, buffer,
        {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_RST_INTERVAL, (s.pixels.cols + 15) / 16});
    jpeg.assign(buffer.begin(), buffer.end());
  }
  const pixpool::JobParams params = default_chain();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  tbb::task_arena arena(cores);
  const pixpool::StripRunner strips = pixpool::tbb_strip_runner(cores);
  double decode_ms = 0, filter_ms = 0, encode_ms = 0;
  for (auto _ : state) {
    arena.execute([&] {
      auto out = pixpool::run_job(jpeg, params, strips);
      decode_ms += out->times.decode_ms;
      filter_ms += out->times.filter_ms;
      encode_ms += out->times.encode_ms;
      benchmark::DoNotOptimize(out);
    });
  }
  label(state);
  const auto n = static_cast<double>(state.iterations());
  state.counters["decode_ms"] = decode_ms / n;
  state.counters["filter_ms"] = filter_ms / n;
  state.counters["encode_ms"] = encode_ms / n;
  state.SetLabel(std::string(kSizes[state.range(0)].label) +
                 (state.range(1) == 1 ? " restarts" : " no restarts"));
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < 3; ++i) b->Arg(i);
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_CodecFloor)->Apply(sizes);
BENCHMARK(BM_Decode)->Apply(sizes);
BENCHMARK(BM_DecodeReduced)->Apply(sizes);
BENCHMARK(BM_BandLimitedBlurContour)->Apply(sizes);
BENCHMARK(BM_Blur)->Apply(sizes);
BENCHMARK(BM_Contour)->Apply(sizes);
BENCHMARK(BM_BlurContour)->Apply(sizes);
BENCHMARK(BM_Encode)->Apply(sizes);
BENCHMARK(BM_Pipeline)->Apply(sizes);
BENCHMARK(BM_PipelineOverFloor)->Apply(sizes);
BENCHMARK(BM_CodecShare)->Apply(sizes);
BENCHMARK(BM_PipelineLoneImage)
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CodecFloor)
    ->Apply(sizes)
    ->Threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
BENCHMARK(BM_PipelineAllCores)
    ->Apply(sizes)
    ->Threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

}  // namespace

int main(int argc, char** argv) {
  cv::setNumThreads(1);  // per-core costs; the backends parallelise across images
  // As in the server: large pixel buffers are reused, not mapped afresh.
  if (std::getenv("PIXPOOL_NO_BUFFER_POOL") == nullptr) pixpool::install_buffer_pool(256 << 20);
  // And, as in the server (service/main.cpp), blocks under 4 MiB (codec
  // buffers, row batches) come from the heap, not from fresh mappings.
  pixpool::tune_malloc(4 << 20);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
