// metrics.jsonl writing, device peak table, formatting; see metrics.h.
#include "train/metrics.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "dist/dist.h"
#include "train/tb_writer.h"
#ifdef KILN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kiln::train {

MetricsLog::~MetricsLog() = default;
MetricsLog::MetricsLog(MetricsLog&&) noexcept = default;
MetricsLog& MetricsLog::operator=(MetricsLog&&) noexcept = default;

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step, const std::string& tb_dir) : path_(path) {
  if (dist::ctx().rank != 0) return;
  if (!tb_dir.empty()) tb_ = std::make_unique<TbWriter>(tb_dir, resume_step);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  if (resume_step >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::vector<std::string> keep;
    for (std::string line; std::getline(in, line);) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t{0}) <= resume_step) keep.push_back(line);
      } catch (const std::exception&) {
        // A torn last line from a killed run: drop it.
      }
    }
    in.close();
    const std::string tmp = path + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : keep) out << l << "\n";
    out.close();
    std::filesystem::rename(tmp, path);
  } else if (resume_step < 0) {
    std::ofstream(path, std::ios::trunc);  // a fresh run starts a fresh log
  }
}

void MetricsLog::write(const nlohmann::ordered_json& record) {
  if (path_.empty() || dist::ctx().rank != 0) return;
  std::ofstream out(path_, std::ios::app);
  out << record.dump() << "\n";
  if (!out) throw Error("cannot append to " + path_, "check free disk space");
  if (tb_) tb_->scalars(record.value("step", int64_t{0}), tb_scalars(record));
}

void MetricsLog::text(int64_t step, const std::string& tag, const std::string& text) {
  if (tb_ && dist::ctx().rank == 0) tb_->text(step, tag, text);
}

std::vector<std::pair<std::string, double>> tb_scalars(const nlohmann::ordered_json& record) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [k, v] : record.items())
    if (k != "step" && v.is_number()) out.emplace_back(k, v.get<double>());
  return out;
}

double peak_flops(const torch::Device& device) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index()) != cudaSuccess) return 0;
    const std::string name = prop.name;
    struct Row { const char* key; double flops; };
    // Dense bf16 tensor-core peaks from the vendors' data sheets.
    static const Row table[] = {{"H200", 989e12}, {"H100", 989e12}, {"GH200", 989e12}, {"B200", 2250e12},
                                {"A100", 312e12}, {"A10G", 125e12}, {"L40S", 362e12}, {"L4", 121e12},
                                {"4090", 165e12}, {"3090", 71e12}};
    for (const auto& r : table)
      if (name.find(r.key) != std::string::npos) return r.flops;
  }
#endif
  (void)device;
  return 0.0;
}

}  // namespace kiln::train
