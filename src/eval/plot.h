// Loss curves as PNG files without a plotting stack: an RGB canvas with lines, axes and tick
// labels in a built-in 3x5 digit font, encoded by a small PNG writer over zlib (already in the
// build). Words (title, legend) go in the Markdown around the image, so the font needs only digits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::eval {

struct Series {
  std::vector<double> x, y;
  uint32_t rgb = 0x1f77b4;  // 0xRRGGBB
  bool points = false;      // markers instead of a line (sparse series such as val loss)
};

// Writes a width x height PNG with both axes spanning all series; ticks labelled with numbers.
// Throws kiln::Error naming the path when it cannot be written.
void plot_png(const std::string& path, const std::vector<Series>& series, int width = 640, int height = 400);

// The PNG encoding of an RGB image (rows top to bottom, 3 bytes per pixel).
std::string encode_png(int width, int height, const std::vector<uint8_t>& rgb);

}  // namespace kiln::eval
