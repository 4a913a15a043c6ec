// remove_tree: what std::filesystem::remove_all does, by nftw(3), for every directory kiln deletes.
// Why not remove_all: libtorch.so (the torch wheel) embeds and exports an old copy of
// std::filesystem, and that copy's remove_all jumps to a null address. Note [libstdc++ before
// libtorch] (CMakeLists.txt) keeps kiln's calls off it here, but on the H200 image (12-04) a kiln
// binary still bound to it and crashed (Gpu.CheckpointFromGpuResumesOnCpuAndBack). So kiln calls
// no remove_all at all; e2e.no_torch_filesystem checks that no kiln binary imports it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <system_error>

namespace kiln {

// Removes `path` and everything below it; a symbolic link is removed itself, never followed. A
// path that does not exist is not an error. Returns the number of entries removed.
// Throws kiln::Error naming the path and the reason.
std::uintmax_t remove_tree(const std::filesystem::path& path);
// The same, reporting a failure in `ec` (cleared on success) instead of throwing.
std::uintmax_t remove_tree(const std::filesystem::path& path, std::error_code& ec) noexcept;

}  // namespace kiln
