// Run metrics: one JSON object per line in <run.dir>/metrics.jsonl (rank 0), floats printed with
// 9 significant digits so float32 values round-trip, plus the helpers behind the console line:
// the device's peak FLOP/s for MFU (H100/H200 989 TFLOP/s bf16) and a compact ETA.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

#include "core/format.h"  // f9, format_duration (the metrics' number format)

namespace kiln::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens <path> for appending; when resuming at `resume_step`, first drops lines whose step is
  // later (they were written by the run that died after its last checkpoint).
  MetricsLog(const std::string& path, int64_t resume_step);
  // Keys keep their insertion order: {"step": n, "loss": x, ...}. Rank 0 only; no-op elsewhere.
  void write(const nlohmann::ordered_json& record);

 private:
  std::string path_;
};

// Peak dense bf16 FLOP/s of the device, or 0 when unknown (CPU): MFU is then not reported.
double peak_flops(const torch::Device& device);

}  // namespace kiln::train
