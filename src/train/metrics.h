// Run metrics: one JSON object per line in <run.dir>/metrics.jsonl (rank 0), floats printed with
// 9 significant digits so float32 values round-trip, plus the helpers behind the console line:
// the device's peak FLOP/s for MFU (H100/H200 989 TFLOP/s bf16) and a compact ETA. With
// log.tensorboard each record's numbers also go to <run.dir>/tb/ as TensorBoard scalars (tb_writer.h).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/tb_writer.h"

#include "core/format.h"  // f9, format_duration (the metrics' number format)

namespace kiln::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens <path> for appending; when resuming at `resume_step`, first drops lines whose step is
  // later (they were written by the run that died after its last checkpoint).
  // tb_dir non-empty: also a TensorBoard event file there, cut back to `resume_step` the same way.
  MetricsLog(const std::string& path, int64_t resume_step, const std::string& tb_dir = "");
  ~MetricsLog();
  MetricsLog(MetricsLog&&) noexcept;
  MetricsLog& operator=(MetricsLog&&) noexcept;
  // Keys keep their insertion order: {"step": n, "loss": x, ...}. Rank 0 only; no-op elsewhere.
  // Every number but "step" is also a TensorBoard scalar of that tag at that step.
  void write(const nlohmann::ordered_json& record);
  // Text for TensorBoard only (samples, the config); a no-op without log.tensorboard.
  void text(int64_t step, const std::string& tag, const std::string& text);

 private:
  std::string path_;
  std::unique_ptr<TbWriter> tb_;
};

// The numbers of a metrics record as TensorBoard scalars: every numeric key but "step".
std::vector<std::pair<std::string, double>> tb_scalars(const nlohmann::ordered_json& record);

// Peak dense bf16 FLOP/s of the device, or 0 when unknown (CPU): MFU is then not reported.
double peak_flops(const torch::Device& device);

}  // namespace kiln::train
