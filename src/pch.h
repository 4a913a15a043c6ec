// Precompiled header for the LibTorch-heavy targets: torch's headers are most of every
// translation unit's compile time on two cores, so they are parsed once (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>
