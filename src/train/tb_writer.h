// TensorBoard event files written by kiln itself: TFRecord framing (uint64 length, masked
// CRC-32C of the length, the bytes, masked CRC-32C of the bytes) around hand-encoded Event /
// Summary protobuf messages (field numbers from tensorboard/compat/proto/{event,summary,tensor}.proto):
// scalars as Summary.Value.simple_value, text as a DT_STRING TensorProto tagged for the "text"
// plugin. No protobuf library: the few messages are a dozen lines of wire format.
// One file per writer (a stage's <run.dir>/tb/); rank 0 only (callers decide). Each record is
// one buffered fwrite + fflush (a write(2) into the page cache, no fsync, no thread): microseconds
// per step, so it never holds a step up, and a SIGKILL leaves at worst a torn last record, which
// TensorBoard stops at and the next resume drops.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace kiln::train {

// CRC-32C (Castagnoli, reflected 0x82F63B78): crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t n);
// TFRecord's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t mask_crc(uint32_t crc);

// The payloads of the whole, CRC-valid records of a TFRecord file, in order; stops at the first
// torn or corrupt record (a crash's tail). Used on resume and by tests.
std::vector<std::string> read_tfrecords(const std::string& path);

class TbWriter {
 public:
  // The event file <dir>/events.out.tfevents.kiln. resume_step < 0: a fresh file. Otherwise the
  // existing file is rewritten with only its whole records of step <= resume_step, so the steps a
  // killed run logged after its last checkpoint are not shown twice when they are trained again.
  TbWriter(const std::string& dir, int64_t resume_step);
  ~TbWriter();
  TbWriter(const TbWriter&) = delete;
  TbWriter& operator=(const TbWriter&) = delete;

  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  void text(int64_t step, const std::string& tag, const std::string& text);
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::string path_;
  FILE* f_ = nullptr;
};

}  // namespace kiln::train
