// TensorBoard event files (train/tb_writer): CRC-32C and its TFRecord mask against the published
// test vector (RFC 3720 B.4: crc32c("123456789") = 0xE3069283; the masked value is what
// tensorboard's own masked_crc32c gives), records read back whole, a torn tail dropped, and a
// resume that cuts the file back to the checkpoint's step. The files are also read by the real
// tensorboard package in tests/e2e/speedrun_check.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "train/tb_writer.h"
#include "core/remove_tree.h"

namespace fs = std::filesystem;
using namespace kiln::train;

TEST(TbWriter, Crc32cTestVectorAndMask) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(mask_crc(crc32c("123456789", 9)), 0xC78AB0E5u);  // tensorboard masked_crc32c(b"123456789")
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(TbWriter, RecordsRoundTripAndTornTailIsDropped) {
  const std::string dir = (fs::temp_directory_path() / ("kiln_tb_writer_" + std::to_string(::getpid()))).string();
  kiln::remove_tree(dir);
  std::string path;
  {
    TbWriter w(dir, -1);
    path = w.path();
    for (int s = 1; s <= 5; ++s) w.scalars(s, {{"loss", 1.0 / s}});
    w.text(5, "samples/0", "hello");
  }
  EXPECT_EQ(read_tfrecords(path).size(), 7u);  // file_version + 5 scalars + 1 text
  // A crash mid-write: the last record loses its final bytes; the whole ones stay readable.
  fs::resize_file(path, fs::file_size(path) - 3);
  EXPECT_EQ(read_tfrecords(path).size(), 6u);
  // A resume from step 3 keeps records of step <= 3 (and the version record) and drops the torn tail.
  {
    TbWriter w(dir, 3);
    w.scalars(4, {{"loss", 0.25}});
  }
  EXPECT_EQ(read_tfrecords(path).size(), 5u);
  // A corrupt byte in a record's data stops reading there.
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(30);
  f.put('\x7f');
  f.close();
  EXPECT_LT(read_tfrecords(path).size(), 5u);
  kiln::remove_tree(dir);
}
