// kiln::remove_tree (core/remove_tree.h), which replaces std::filesystem::remove_all everywhere:
// it removes a whole tree, counts what it removed, never follows a symbolic link out of the tree,
// treats a missing path as nothing to do, and reports a failure with the path.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/remove_tree.h"
#include "test_util.h"

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesTheTreeButNotWhatALinkPointsTo) {
  const fs::path root = kiln::test::temp_dir();
  const fs::path tree = root / "tree", outside = root / "outside";
  fs::create_directories(tree / "a" / "b");
  fs::create_directories(outside);
  std::ofstream(tree / "a" / "b" / "f.txt") << "x";
  std::ofstream(tree / "g.txt") << "y";
  std::ofstream(outside / "keep.txt") << "z";
  fs::create_directory_symlink(outside, tree / "link");          // followed, it would delete keep.txt
  fs::create_symlink(outside / "keep.txt", tree / "file_link");
  ::chmod((tree / "a").c_str(), 0500);                           // unwritable dir: root removes it anyway
  EXPECT_EQ(kiln::remove_tree(tree), 7u);  // tree, a, b, f.txt, g.txt, link, file_link
  EXPECT_FALSE(fs::exists(fs::symlink_status(tree)));
  EXPECT_TRUE(fs::exists(outside / "keep.txt"));
  EXPECT_EQ(kiln::remove_tree(tree), 0u);  // missing: nothing to do, no error
  std::error_code ec;
  EXPECT_EQ(kiln::remove_tree(tree / "none" / "deeper", ec), 0u);
  EXPECT_FALSE(ec);
  std::ofstream(root / "single") << "s";   // a plain file is removed like remove_all removes it
  EXPECT_EQ(kiln::remove_tree(root / "single"), 1u);
  EXPECT_EQ(kiln::remove_tree(root), 3u);  // root, outside, outside/keep.txt
}

TEST(RemoveTree, AFailureNamesThePath) {
  // A path component that is a file: lstat fails with ENOTDIR, an error (not "missing").
  const fs::path root = kiln::test::temp_dir();
  std::ofstream(root / "file") << "x";
  std::error_code ec;
  kiln::remove_tree(root / "file" / "below", ec);
  EXPECT_TRUE(ec);
  const std::string msg = kiln::test::error_of([&] { kiln::remove_tree(root / "file" / "below"); });
  EXPECT_NE(msg.find((root / "file" / "below").string()), std::string::npos) << msg;
  kiln::remove_tree(root);
}
