#include "workers/engine/calib/block_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

class Writer {
 public:
  template <typename T>
  void Add(const std::string& name, const char* kind, const T* data, size_t count) {
    header_.push_back({{"name", name}, {"kind", kind}, {"offset", data_.size()}, {"count", count}});
    data_.append(reinterpret_cast<const char*>(data), count * sizeof(T));
  }
  std::string Finish(json header) {
    header["arrays"] = std::move(header_);
    const std::string text = header.dump();
    const uint64_t len = text.size();
    std::string out(reinterpret_cast<const char*>(&len), sizeof(len));
    return out + text + data_;
  }

 private:
  json header_ = json::array();
  std::string data_;
};

// The arrays of a decoded checkpoint: name -> (kind, pointer, count).
struct ArrayRef {
  std::string kind;
  const char* data = nullptr;
  size_t count = 0;
};

template <typename T>
absl::StatusOr<std::vector<T>> Take(const std::map<std::string, ArrayRef>& arrays,
                                    const std::string& key, const char* kind,
                                    const std::string& name) {
  auto it = arrays.find(key);
  if (it == arrays.end() || it->second.kind != kind) {
    return absl::DataLossError(absl::StrCat(name, ": missing array ", key));
  }
  std::vector<T> v(it->second.count);
  std::memcpy(v.data(), it->second.data, v.size() * sizeof(T));
  return v;
}

// SpQR's parts of quantized tensor `name` (quant_grid.h SpqrParts).
void AddSpqrArrays(const std::string& name, const engine::SpqrParts& p, Writer* w) {
  w->Add(name + "#sperm", "i32", p.perm.data(), p.perm.size());
  w->Add(name + "#scodes", "u8", p.scale_codes.data(), p.scale_codes.size());
  w->Add(name + "#zcodes", "u8", p.zero_codes.data(), p.zero_codes.size());
  w->Add(name + "#sstats", "f32", p.scale_stats.data(), p.scale_stats.size());
  w->Add(name + "#zstats", "f32", p.zero_stats.data(), p.zero_stats.size());
  w->Add(name + "#orows", "i32", p.outlier_rows.data(), p.outlier_rows.size());
  w->Add(name + "#ocols", "i32", p.outlier_cols.data(), p.outlier_cols.size());
  w->Add(name + "#ovals", "f32", p.outlier_values.data(), p.outlier_values.size());
}

absl::StatusOr<engine::SpqrParts> TakeSpqrArrays(const std::map<std::string, ArrayRef>& arrays,
                                                 const std::string& tensor, const json& spec,
                                                 const std::string& name) {
  engine::SpqrParts p;
  p.stat_bits = spec.at("stat_bits").get<int>();
  p.stat_group = spec.at("stat_group").get<int64_t>();
  ASSIGN_OR_RETURN(p.perm, Take<int32_t>(arrays, tensor + "#sperm", "i32", name));
  ASSIGN_OR_RETURN(p.scale_codes, Take<uint8_t>(arrays, tensor + "#scodes", "u8", name));
  ASSIGN_OR_RETURN(p.zero_codes, Take<uint8_t>(arrays, tensor + "#zcodes", "u8", name));
  ASSIGN_OR_RETURN(p.scale_stats, Take<float>(arrays, tensor + "#sstats", "f32", name));
  ASSIGN_OR_RETURN(p.zero_stats, Take<float>(arrays, tensor + "#zstats", "f32", name));
  ASSIGN_OR_RETURN(p.outlier_rows, Take<int32_t>(arrays, tensor + "#orows", "i32", name));
  ASSIGN_OR_RETURN(p.outlier_cols, Take<int32_t>(arrays, tensor + "#ocols", "i32", name));
  ASSIGN_OR_RETURN(p.outlier_values, Take<float>(arrays, tensor + "#ovals", "f32", name));
  return p;
}

}  // namespace

std::string EncodeBlockCheckpoint(const BlockCheckpoint& c) {
  Writer w;
  json quantized = json::array();
  for (const auto& [name, t] : c.weights) w.Add(name + "#w", "f32", t.data, t.numel());
  for (const auto& [name, q] : c.quantized) {
    w.Add(name + "#codes", "u8", q.codes.data(), q.codes.size());
    w.Add(name + "#scales", "f32", q.scales.data(), q.scales.size());
    w.Add(name + "#zeros", "f32", q.zeros.data(), q.zeros.size());
    w.Add(name + "#gidx", "i32", q.group_index.data(), q.group_index.size());
    json spqr;  // null unless SpQR
    if (q.spqr) {
      AddSpqrArrays(name, *q.spqr, &w);
      spqr = {{"stat_bits", q.spqr->stat_bits}, {"stat_group", q.spqr->stat_group}};
    }
    quantized.push_back({{"name", name},
                         {"spqr", spqr},
                         {"rows", q.rows},
                         {"cols", q.cols},
                         {"bits", q.grid.bits},
                         {"group_size", q.grid.group_size},
                         {"symmetric", q.grid.symmetric},
                         {"scale_bits", q.grid.scale_bits},
                         {"fp8", q.grid.fp8},
                         {"groups", q.groups}});
  }
  json shapes = json::object();
  for (const auto& [name, t] : c.weights) shapes[name] = t.shape;
  return w.Finish({{"fingerprint", c.fingerprint},
                   {"block", c.block},
                   {"shapes", shapes},
                   {"quantized", quantized},
                   {"layers", c.layers},
                   {"timings", c.timings},
                   {"awq", c.awq},
                   {"smoothquant", c.smoothquant}});
}

absl::StatusOr<BlockCheckpoint> DecodeBlockCheckpoint(const std::string& bytes,
                                                      const std::string& name) {
  uint64_t len = 0;
  if (bytes.size() < sizeof(len)) return absl::DataLossError(absl::StrCat(name, ": truncated"));
  std::memcpy(&len, bytes.data(), sizeof(len));
  if (len > bytes.size() - sizeof(len)) {
    return absl::DataLossError(absl::StrCat(name, ": header length ", len, " past the end"));
  }
  const size_t data_start = sizeof(len) + len;
  BlockCheckpoint c;
  std::map<std::string, ArrayRef> arrays;
  try {
    const json h = json::parse(bytes.substr(sizeof(len), len));
    c.fingerprint = h.at("fingerprint").get<std::string>();
    c.block = h.at("block").get<int>();
    c.layers = h.at("layers");
    c.timings = h.at("timings");
    c.awq = h.value("awq", json::array());  // checkpoints from before AWQ have none
    c.smoothquant = h.value("smoothquant", json::array());
    for (const json& a : h.at("arrays")) {
      const std::string kind = a.at("kind").get<std::string>();
      const size_t size = kind == "u8" ? 1 : 4;
      const uint64_t offset = a.at("offset").get<uint64_t>(), count = a.at("count").get<uint64_t>();
      if (offset > bytes.size() - data_start || count > (bytes.size() - data_start - offset) / size) {
        return absl::DataLossError(absl::StrCat(name, ": array ", a.at("name").get<std::string>(),
                                                " past the end"));
      }
      arrays[a.at("name").get<std::string>()] = {kind, bytes.data() + data_start + offset, count};
    }
    for (const auto& [tensor, shape] : h.at("shapes").items()) {
      ASSIGN_OR_RETURN(std::vector<float> v, Take<float>(arrays, tensor + "#w", "f32", name));
      c.weights[tensor] = engine::Tensor::Owned(shape.get<std::vector<int64_t>>(), std::move(v));
      if (c.weights[tensor].numel() != static_cast<int64_t>(arrays[tensor + "#w"].count)) {
        return absl::DataLossError(absl::StrCat(name, ": ", tensor, ": shape and size differ"));
      }
    }
    for (const json& qj : h.at("quantized")) {
      const std::string tensor = qj.at("name").get<std::string>();
      engine::QuantizedTensor q;
      q.rows = qj.at("rows").get<int64_t>();
      q.cols = qj.at("cols").get<int64_t>();
      q.groups = qj.at("groups").get<int64_t>();
      q.grid = {qj.at("bits").get<int>(), qj.at("group_size").get<int64_t>(),
                qj.at("symmetric").get<bool>(), qj.value("scale_bits", 0), qj.value("fp8", false)};
      ASSIGN_OR_RETURN(q.codes, Take<uint8_t>(arrays, tensor + "#codes", "u8", name));
      ASSIGN_OR_RETURN(q.scales, Take<float>(arrays, tensor + "#scales", "f32", name));
      ASSIGN_OR_RETURN(q.zeros, Take<float>(arrays, tensor + "#zeros", "f32", name));
      ASSIGN_OR_RETURN(q.group_index, Take<int32_t>(arrays, tensor + "#gidx", "i32", name));
      if (static_cast<int64_t>(q.codes.size()) != q.rows * q.cols ||
          static_cast<int64_t>(q.scales.size()) != q.rows * q.groups) {
        return absl::DataLossError(absl::StrCat(name, ": ", tensor, ": inconsistent sizes"));
      }
      if (qj.contains("spqr") && !qj.at("spqr").is_null()) {
        ASSIGN_OR_RETURN(q.spqr, TakeSpqrArrays(arrays, tensor, qj.at("spqr"), name));
        const auto out_of_range = [&q](int32_t c) { return c < 0 || c >= q.cols; };
        if (q.spqr->outlier_rows.size() != static_cast<size_t>(q.rows + 1) ||
            q.spqr->outlier_cols.size() != q.spqr->outlier_values.size() ||
            q.spqr->outlier_rows.back() != static_cast<int32_t>(q.spqr->outlier_cols.size()) ||
            std::any_of(q.spqr->outlier_cols.begin(), q.spqr->outlier_cols.end(), out_of_range)) {
          return absl::DataLossError(absl::StrCat(name, ": ", tensor, ": inconsistent outliers"));
        }
      }
      c.quantized[tensor] = std::move(q);
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(name, ": bad header: ", e.what()));
  }
  return c;
}

}  // namespace compressd::engine
