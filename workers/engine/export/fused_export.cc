#include "workers/engine/export/fused_export.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

struct Part {
  const NamedTensor* tensor;
  StoredPlace place;
  const QuantizedTensor* quantized;  // null when dense
};

absl::Status GroupError(const std::string& stored, const std::string& part, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      stored, " (stored fused): ", part, " ", why,
      "; its parts are one tensor in the checkpoint, so target all of them or none"));
}

// The parts' rows, one after another.
Tensor ConcatRows(const std::vector<Part>& parts, const std::vector<int64_t>& shape) {
  std::vector<float> values(static_cast<size_t>(shape[0] * shape[1]));
  for (const Part& p : parts) {
    const Tensor& t = *p.tensor->tensor;
    std::memcpy(values.data() + p.place.first_row * shape[1], t.data,
                static_cast<size_t>(t.numel()) * sizeof(float));
  }
  return Tensor::Owned(shape, std::move(values));
}

// SpQR parts (algorithms/spqr.h): one sweep order (the parts read the same
// inputs, so they share their Hessian and its act-order) and statistics groups
// that end with each part, so the fused module's second-level codes, statistics
// and outliers are its parts' one after another.
absl::StatusOr<SpqrParts> ConcatSpqr(const std::string& stored, const std::vector<Part>& parts,
                                     int64_t total_rows) {
  const SpqrParts& first = *parts[0].quantized->spqr;
  const int64_t groups = parts[0].quantized->groups;
  SpqrParts out;
  out.stat_bits = first.stat_bits;
  out.stat_group = first.stat_group;
  out.perm = first.perm;
  out.scale_codes.resize(static_cast<size_t>(groups * total_rows));
  out.zero_codes.resize(out.scale_codes.size());
  const int64_t total_chunks = total_rows / first.stat_group;
  out.scale_stats.resize(static_cast<size_t>(groups * total_chunks * 2));
  out.zero_stats.resize(out.scale_stats.size());
  out.outlier_rows = {0};
  int64_t row0 = 0;
  for (const Part& p : parts) {
    const QuantizedTensor& q = *p.quantized;
    const std::string& name = p.tensor->name;
    const SpqrParts& sp = *q.spqr;  // ConcatQuantized checked every part has them
    if (sp.stat_bits != first.stat_bits || sp.stat_group != first.stat_group) {
      return GroupError(stored, name,
                        absl::StrCat("has other SpQR statistics than ", parts[0].tensor->name));
    }
    if (sp.perm != first.perm) {
      return GroupError(stored, name,
                        absl::StrCat("has another sweep order than ", parts[0].tensor->name));
    }
    if (q.rows % sp.stat_group != 0) {
      return GroupError(stored, name,
                        absl::StrCat("has ", q.rows, " rows, not a multiple of stat_group ",
                                     sp.stat_group, " (a statistics group would span two parts)"));
    }
    const int64_t chunks = q.rows / sp.stat_group, chunk0 = row0 / sp.stat_group;
    for (int64_t g = 0; g < groups; ++g) {
      std::copy_n(sp.scale_codes.begin() + g * q.rows, q.rows,
                  out.scale_codes.begin() + g * total_rows + row0);
      std::copy_n(sp.zero_codes.begin() + g * q.rows, q.rows,
                  out.zero_codes.begin() + g * total_rows + row0);
      std::copy_n(sp.scale_stats.begin() + g * chunks * 2, chunks * 2,
                  out.scale_stats.begin() + (g * total_chunks + chunk0) * 2);
      std::copy_n(sp.zero_stats.begin() + g * chunks * 2, chunks * 2,
                  out.zero_stats.begin() + (g * total_chunks + chunk0) * 2);
    }
    const int32_t before = out.outlier_rows.back();
    for (int64_t r = 1; r <= q.rows; ++r) out.outlier_rows.push_back(before + sp.outlier_rows[r]);
    out.outlier_cols.insert(out.outlier_cols.end(), sp.outlier_cols.begin(), sp.outlier_cols.end());
    out.outlier_values.insert(out.outlier_values.end(), sp.outlier_values.begin(),
                              sp.outlier_values.end());
    row0 += q.rows;
  }
  return out;
}

absl::StatusOr<QuantizedTensor> ConcatQuantized(const std::string& stored,
                                                const std::vector<Part>& parts) {
  const QuantizedTensor& first = *parts[0].quantized;
  QuantizedTensor out;
  out.cols = first.cols;
  out.grid = first.grid;
  out.groups = first.groups;
  out.group_index = first.group_index;
  for (const Part& p : parts) {
    const QuantizedTensor& q = *p.quantized;
    if (q.grid.bits != first.grid.bits || q.grid.group_size != first.grid.group_size ||
        q.grid.symmetric != first.grid.symmetric || q.groups != first.groups ||
        q.cols != first.cols) {
      return GroupError(stored, p.tensor->name,
                        absl::StrCat("is quantized on another grid than ", parts[0].tensor->name));
    }
    if (q.group_index != first.group_index) {
      return GroupError(stored, p.tensor->name,
                        absl::StrCat("has other act-order groups than ", parts[0].tensor->name));
    }
    out.rows += q.rows;
    out.codes.insert(out.codes.end(), q.codes.begin(), q.codes.end());
    out.scales.insert(out.scales.end(), q.scales.begin(), q.scales.end());
    out.zeros.insert(out.zeros.end(), q.zeros.begin(), q.zeros.end());
    if (q.spqr.has_value() != first.spqr.has_value()) {
      const Part& plain = q.spqr ? parts[0] : p;
      return GroupError(stored, plain.tensor->name, "is not SpQR-quantized but other parts are");
    }
  }
  if (first.spqr) {
    ASSIGN_OR_RETURN(SpqrParts spqr, ConcatSpqr(stored, parts, out.rows));
    out.spqr = std::move(spqr);
  }
  return out;
}

// The expected parts of the group `stored` belongs to, checked complete.
absl::Status CheckComplete(const std::string& stored, const std::vector<Part>& parts) {
  int64_t rows = 0;
  for (const Part& p : parts) {
    if (p.place.first_row != rows) {
      return GroupError(stored, p.tensor->name,
                        absl::StrCat("starts at row ", p.place.first_row, " but the parts before "
                                     "it end at ", rows, " (a part is missing)"));
    }
    rows += p.tensor->tensor->rows();
  }
  if (rows != parts[0].place.shape[0]) {
    return GroupError(stored, parts.back().tensor->name,
                      absl::StrCat("ends at row ", rows, " of ", parts[0].place.shape[0],
                                   " (a part is missing)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StoredTensors> FuseForExport(
    const LlamaConfig& config, const std::vector<NamedTensor>& tensors,
    const std::map<std::string, const QuantizedTensor*>& quantized) {
  StoredTensors out;
  std::map<std::string, std::vector<Part>> groups;
  std::vector<std::string> order;  // stored names in first-seen order (dense ones too)
  for (const NamedTensor& t : tensors) {
    auto q = quantized.find(t.name);
    const QuantizedTensor* qt = q == quantized.end() ? nullptr : q->second;
    StoredPlace place = StoredPlaceOf(config, t.name, t.tensor->shape);
    if (place.name == t.name) {
      order.push_back(t.name);
      groups[t.name].push_back({&t, std::move(place), qt});
      continue;
    }
    std::vector<Part>& g = groups[place.name];
    if (g.empty()) order.push_back(place.name);
    g.push_back({&t, std::move(place), qt});
  }
  for (const std::string& name : order) {
    std::vector<Part>& parts = groups[name];
    if (parts.size() == 1 && parts[0].tensor->name == name) {
      out.tensors.push_back(*parts[0].tensor);
      if (parts[0].quantized != nullptr) out.quantized[name] = parts[0].quantized;
      continue;
    }
    std::sort(parts.begin(), parts.end(),
              [](const Part& a, const Part& b) { return a.place.first_row < b.place.first_row; });
    RETURN_IF_ERROR(CheckComplete(name, parts));
    Tensor& fused = out.fused.emplace_back(ConcatRows(parts, parts[0].place.shape));
    out.tensors.push_back({name, &fused});
    const size_t n_quantized = static_cast<size_t>(std::count_if(
        parts.begin(), parts.end(), [](const Part& p) { return p.quantized != nullptr; }));
    if (n_quantized == 0) continue;
    if (n_quantized != parts.size()) {
      const auto dense = std::find_if(parts.begin(), parts.end(),
                                      [](const Part& p) { return p.quantized == nullptr; });
      return GroupError(name, dense->tensor->name, "is not quantized but other parts are");
    }
    ASSIGN_OR_RETURN(QuantizedTensor q, ConcatQuantized(name, parts));
    out.quantized[name] = &out.fused_quantized.emplace_back(std::move(q));
  }
  // Codes of no listed tensor stay, for the writer to report.
  for (const auto& [name, q] : quantized) {
    if (groups.count(StoredPlaceOf(config, name, {q->rows, q->cols}).name) == 0)
      out.quantized[name] = q;
  }
  return out;
}

}  // namespace compressd::engine
