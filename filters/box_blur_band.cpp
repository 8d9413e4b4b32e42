#include "filters/box_blur_band.hpp"

namespace pixpool::box_blur {

#if defined(__x86_64__)
void blur_band_sse2(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                    int channels, const Plan& plan, std::uint16_t* t0, std::uint16_t* t1);
void blur_band_avx2(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols,
                    int channels, const Plan& plan, std::uint16_t* t0, std::uint16_t* t1);

bool band_blur_available() {
  return true;
}

void blur_band(const std::uint8_t* const* rows, std::uint16_t* const* out, int cols, int channels,
               const Plan& plan, BandScratch& scratch, BandIsa isa) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  const auto size =
      static_cast<std::size_t>(kBandRows) * (cols + 2 * plan.total_radius()) * channels;
  // Both checked: a bad_alloc between the two resizes must not leave a
  // short `b` behind for the next image on this thread.
  if (scratch.a.size() < size || scratch.b.size() < size) {
    scratch.a.resize(size);
    scratch.b.resize(size);
  }
  (avx2 && isa == BandIsa::best ? blur_band_avx2 : blur_band_sse2)(
      rows, out, cols, channels, plan, scratch.a.data(), scratch.b.data());
}
#else
bool band_blur_available() {
  return false;
}
void blur_band(const std::uint8_t* const*, std::uint16_t* const*, int, int, const Plan&,
               BandScratch&, BandIsa) {}
#endif

}  // namespace pixpool::box_blur
