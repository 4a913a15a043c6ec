// remove_tree (remove_tree.h): a depth-first nftw walk that never crosses a symbolic link
// (FTW_PHYS), removing each entry after its children (FTW_DEPTH).
#include "core/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "core/error.h"

namespace kiln {

namespace {

// nftw's callback takes no user pointer; one walk runs per thread at a time.
thread_local std::uintmax_t t_removed = 0;
thread_local int t_errno = 0;

int remove_entry(const char* p, const struct stat*, int, struct FTW*) {
  if (std::remove(p) != 0) {
    t_errno = errno;
    return 1;  // stop the walk
  }
  ++t_removed;
  return 0;
}

}  // namespace

std::uintmax_t remove_tree(const std::filesystem::path& path, std::error_code& ec) noexcept {
  ec.clear();
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) ec = std::error_code(errno, std::generic_category());
    return 0;
  }
  t_removed = 0;
  t_errno = 0;
  const int rc = ::nftw(path.c_str(), remove_entry, 64, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) ec = std::error_code(t_errno != 0 ? t_errno : errno, std::generic_category());
  return t_removed;
}

std::uintmax_t remove_tree(const std::filesystem::path& path) {
  std::error_code ec;
  const std::uintmax_t n = remove_tree(path, ec);
  if (ec) throw Error("cannot remove '" + path.string() + "': " + ec.message(), "check the permissions of that directory");
  return n;
}

}  // namespace kiln
