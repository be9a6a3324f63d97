#include "workers/engine/export/gguf_stream_writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {

using gguf_export_internal::TensorPlan;

absl::StatusOr<std::unique_ptr<GgufStreamWriter>> GgufStreamWriter::Create(
    const LlamaConfig& config, bool tied, const GgufFile& source, GgufExportOptions options,
    const std::string& out_path) {
  RETURN_IF_ERROR(ValidateLlamaConfig(config, "model"));
  std::unique_ptr<GgufStreamWriter> w(
      new GgufStreamWriter(config, source, std::move(options), out_path));
  ASSIGN_OR_RETURN(w->plans_, gguf_export_internal::ListTensors(config, tied, nullptr));
  RETURN_IF_ERROR(gguf_export_internal::CheckNames(w->options_, {}, &w->plans_));
  // Placeholder types and sizes: the header's size does not depend on them.
  GgufBuilder builder;
  std::vector<std::string> dropped;
  ASSIGN_OR_RETURN(const std::string header, w->Header(0, &builder, &dropped));
  w->header_size_ = header.size();
  ASSIGN_OR_RETURN(w->sink_, AtomicFile::Create(out_path));
  RETURN_IF_ERROR(w->sink_->Write(header));
  RETURN_IF_ERROR(w->WriteGenerated());
  return w;
}

absl::StatusOr<std::string> GgufStreamWriter::Header(uint32_t file_type, GgufBuilder* builder,
                                                     std::vector<std::string>* dropped) const {
  ASSIGN_OR_RETURN(*dropped, gguf_export_internal::AddMetadata(config_, source_, options_,
                                                               file_type, builder));
  gguf_export_internal::AddTensorInfos(plans_, builder);
  return builder->Header();
}

absl::Status GgufStreamWriter::Expect(const std::string& hf_name) const {
  if (next_ < plans_.size() && plans_[next_].report.hf_name == hf_name) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      out_path_, ": tensor ", hf_name, " written out of order; the next one is ",
      next_ < plans_.size() ? plans_[next_].report.hf_name : std::string("none (all written)")));
}

absl::Status GgufStreamWriter::WriteNext(const QuantizedTensor* q) {
  TensorPlan& p = plans_[next_];
  const bool pad = next_ + 1 == plans_.size() || !plans_[next_ + 1].continues_stack;
  absl::Status s = gguf_export_internal::ChooseType(
      options_, q, &p,
      p.continues_stack ? std::optional<GgmlType>(plans_[next_ - 1].report.type) : std::nullopt);
  if (s.ok()) s = gguf_export_internal::WriteTensor(p, config_.head_dim, sink_.get(), pad);
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat(out_path_, ": tensor ", p.report.gguf_name, ": ", s.message()));
  }
  // Only the report stays: the tensor, its grid and its reader were the caller's.
  p.tensor = nullptr;
  p.grid = nullptr;
  p.read_rows = nullptr;
  p.generated.clear();
  ++next_;
  return absl::OkStatus();
}

absl::Status GgufStreamWriter::WriteGenerated() {
  while (next_ < plans_.size() && plans_[next_].report.hf_name.empty()) {
    RETURN_IF_ERROR(WriteNext(nullptr));
  }
  return absl::OkStatus();
}

absl::Status GgufStreamWriter::WriteRows(const std::string& hf_name, const RowReader& read) {
  RETURN_IF_ERROR(WriteGenerated());
  RETURN_IF_ERROR(Expect(hf_name));
  TensorPlan& p = plans_[next_];
  if (p.is_matrix()) {
    p.read_rows = read;
  } else {
    p.generated.resize(static_cast<size_t>(p.row_len()));
    RETURN_IF_ERROR(read(0, 1, p.generated.data()));
  }
  return WriteNext(nullptr);
}

absl::Status GgufStreamWriter::WriteBlock(
    int block, const BlockWeights& w,
    const std::map<std::string, const QuantizedTensor*>& quantized) {
  RETURN_IF_ERROR(WriteGenerated());
  // Each grid must be a 2-D weight of the model of its shape, and of this block.
  RETURN_IF_ERROR(gguf_export_internal::CheckNames(GgufExportOptions{}, quantized, &plans_));
  const std::string prefix = absl::StrCat("model.layers.", block, ".");
  for (const auto& [name, q] : quantized) {
    if (name.rfind(prefix, 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          out_path_, ": block ", block, " was given the quantized tensor ", name,
          " of another block"));
    }
  }
  std::vector<std::pair<std::string, const Tensor*>> tensors;  // the plans' order
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (HasTensor(config_, spec, block))
      tensors.push_back({prefix + HfSuffix(config_, spec), &(w.*spec.slot)});
  }
  ASSIGN_OR_RETURN(std::vector<GgufMoeTensor> moe,
                   gguf_export_internal::MoeTensorsOf(config_, block, &w));
  for (const GgufMoeTensor& m : moe) {
    for (const BlockPart& part : m.parts) tensors.push_back({prefix + part.suffix, part.tensor});
  }
  for (const auto& [name, tensor] : tensors) {
    RETURN_IF_ERROR(Expect(name));
    TensorPlan& p = plans_[next_];
    const Tensor& t = *tensor;
    if (t.empty() || t.shape != p.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model tensor ", name, " has shape ",
          t.empty() ? std::string("(missing)") : ShapeString(t.shape), ", its config expects ",
          ShapeString(p.shape)));
    }
    p.tensor = &t;
    auto q = quantized.find(name);
    RETURN_IF_ERROR(WriteNext(q == quantized.end() ? nullptr : q->second));
  }
  return absl::OkStatus();
}

absl::StatusOr<GgufExportReport> GgufStreamWriter::Finish() {
  RETURN_IF_ERROR(WriteGenerated());
  if (next_ != plans_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        out_path_, ": finished before tensor ", plans_[next_].report.hf_name, " was written"));
  }
  GgufExportReport report;
  report.path = out_path_;
  report.file_type = gguf_export_internal::LlamaFileType(plans_);
  GgufBuilder builder;
  ASSIGN_OR_RETURN(const std::string header,
                   Header(report.file_type, &builder, &report.dropped_keys));
  if (header.size() != header_size_ || sink_->written() != builder.FileSize()) {
    return absl::InternalError(absl::StrCat(out_path_, ": header ", header.size(), " bytes, file ",
                                            sink_->written(), " bytes; the layout says ",
                                            header_size_, " and ", builder.FileSize()));
  }
  RETURN_IF_ERROR(sink_->WriteAt(0, header));
  RETURN_IF_ERROR(sink_->Commit());
  for (const TensorPlan& p : plans_) report.tensors.push_back(p.report);
  report.file_size = builder.FileSize();
  return report;
}

}  // namespace compressd::engine
