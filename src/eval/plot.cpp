// PNG writer and line plots; see plot.h. PNG: signature, IHDR (8-bit RGB), one zlib IDAT with
// filter byte 0 per row, IEND; each chunk's CRC-32 from zlib.
#include "eval/plot.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace kiln::eval {
namespace {

void put32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  put32(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(td.data()), td.size())));
}

// 3x5 glyphs for "0123456789.-e+", one row per 3 bits (MSB = left).
const char* kGlyphChars = "0123456789.-e+";
const uint8_t kGlyphs[][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
                              {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
                              {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0}, {0, 7, 5, 6, 3}, {0, 2, 7, 2, 0}};

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_) * h_ * 3, 255) {}
  void set(int x, int y, uint32_t c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
    p[0] = (c >> 16) & 0xff, p[1] = (c >> 8) & 0xff, p[2] = c & 0xff;
  }
  void line(int x0, int y0, int x1, int y1, uint32_t c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      for (int a = 0; a < thick; ++a)
        for (int b = 0; b < thick; ++b) set(x0 + a, y0 + b, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Text at (x, y) top-left, glyphs scaled 2x.
  void text(int x, int y, const std::string& s, uint32_t c) {
    for (char ch : s) {
      const char* g = std::strchr(kGlyphChars, ch);
      if (g && ch) {
        const uint8_t* rows = kGlyphs[g - kGlyphChars];
        for (int r = 0; r < 5; ++r)
          for (int col = 0; col < 3; ++col)
            if (rows[r] & (4 >> col))
              for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) set(x + col * 2 + a, y + r * 2 + b, c);
      }
      x += 8;
    }
  }
};

std::string tick_label(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3)) snprintf(buf, sizeof(buf), "%.1e", v);
  else snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

}  // namespace

std::string encode_png(int width, int height, const std::vector<uint8_t>& rgb) {
  std::string raw;
  raw.reserve(static_cast<size_t>(height) * (width * 3 + 1));
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(&rgb[static_cast<size_t>(y) * width * 3]), static_cast<size_t>(width) * 3);
  }
  uLongf n = compressBound(raw.size());
  std::string z(n, '\0');
  compress2(reinterpret_cast<Bytef*>(z.data()), &n, reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 9);
  z.resize(n);
  std::string out("\x89PNG\r\n\x1a\n", 8), ihdr;
  put32(ihdr, width), put32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit, RGB, deflate, no filter, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  return out;
}

void plot_png(const std::string& path, const std::vector<Series>& series, int width, int height) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]), y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  Canvas c(width, height);
  const int L = 70, R = width - 15, T = 15, B = height - 35;
  auto px = [&](double x) { return L + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (R - L))); };
  auto py = [&](double y) { return B - static_cast<int>(std::lround((y - y0) / (y1 - y0) * (B - T))); };
  for (int i = 0; i <= 4; ++i) {  // grid and tick labels
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    c.line(px(xv), T, px(xv), B, 0xe0e0e0);
    c.line(L, py(yv), R, py(yv), 0xe0e0e0);
    const std::string xl = tick_label(xv), yl = tick_label(yv);
    c.text(px(xv) - static_cast<int>(xl.size()) * 4, B + 8, xl, 0x333333);
    c.text(L - 6 - static_cast<int>(yl.size()) * 8, py(yv) - 5, yl, 0x333333);
  }
  c.line(L, B, R, B, 0x000000);
  c.line(L, T, L, B, 0x000000);
  for (const auto& s : series) {
    int lx = -1, ly = -1;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      const int x = px(s.x[i]), y = py(s.y[i]);
      if (s.points) {
        for (int a = -2; a <= 2; ++a) c.line(x - 2, y + a, x + 2, y + a, s.rgb);
      } else if (lx >= 0) {
        c.line(lx, ly, x, y, s.rgb, 2);
      }
      lx = x, ly = y;
    }
  }
  std::ofstream out(path, std::ios::binary);
  out << encode_png(width, height, c.px);
  if (!out) throw Error("[report] cannot write " + path);
}

}  // namespace kiln::eval
