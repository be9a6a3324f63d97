// export-gguf: reads a llama GGUF, optionally RTN-quantizes its linear
// weights (so their grids go through the exact-encoding path), and writes it
// back with WriteGgufLlama; prints the per-tensor report. For trying the GGUF
// export by hand and with llama.cpp (tests/python/check_gguf_llamacpp.py)
// before it is wired into compress-worker.
//
// usage: export-gguf --model IN.gguf --out OUT.gguf [--target-type auto|TYPE]
//                    [--other-type auto|TYPE] [--rtn BITS[:GROUP[:asym]]]
// Targets are every model.layers.N.{self_attn,mlp}.*_proj.weight.
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "workers/engine/export/ggml_quantize.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/llama_names.h"

namespace {

using compressd::engine::QuantGrid;
using compressd::engine::QuantizedTensor;

struct Args {
  std::string model, out, rtn, target_type = "auto", other_type = "auto";
  compressd::engine::GgufExportOptions options;
};

// "auto" leaves `*type` as it is; else a ggml type name.
absl::Status ParseType(const std::string& name, const char* flag,
                       std::optional<compressd::engine::GgmlType>* type) {
  if (name == "auto") return absl::OkStatus();
  absl::StatusOr<compressd::engine::GgmlType> t = compressd::engine::ParseQuantizeType(name);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", t.status().message()));
  *type = *t;
  return absl::OkStatus();
}

bool ParseArgs(int argc, char** argv, Args* a) {
  const std::map<std::string, std::string*> flags = {{"--model", &a->model},
                                                     {"--out", &a->out},
                                                     {"--target-type", &a->target_type},
                                                     {"--other-type", &a->other_type},
                                                     {"--rtn", &a->rtn}};
  for (int i = 1; i + 1 < argc; i += 2) {
    auto it = flags.find(argv[i]);
    if (it == flags.end()) return false;
    *it->second = argv[i + 1];
  }
  return argc % 2 == 1 && !a->model.empty() && !a->out.empty();
}

// "4:32:asym" -> bits 4, group 32, asymmetric; group defaults to 32, symmetric.
bool ParseGrid(const std::string& s, QuantGrid* g) {
  std::vector<std::string> p = absl::StrSplit(s, ':');
  g->group_size = 32;
  g->symmetric = true;
  return !p.empty() && p.size() <= 3 && absl::SimpleAtoi(p[0], &g->bits) &&
         (p.size() < 2 || absl::SimpleAtoi(p[1], &g->group_size)) &&
         (p.size() < 3 || ((g->symmetric = p[2] == "sym") || p[2] == "asym"));
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "export-gguf: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  QuantGrid grid;
  if (!ParseArgs(argc, argv, &a) || (!a.rtn.empty() && !ParseGrid(a.rtn, &grid))) {
    std::fprintf(stderr,
                 "usage: export-gguf --model IN.gguf --out OUT.gguf [--target-type auto|TYPE]\n"
                 "                   [--other-type auto|TYPE] [--rtn BITS[:GROUP[:sym|asym]]]\n");
    return 2;
  }
  std::optional<compressd::engine::GgmlType> other;
  if (absl::Status st = ParseType(a.target_type, "--target-type", &a.options.target_type);
      !st.ok()) {
    return Fail(st);
  }
  if (absl::Status st = ParseType(a.other_type, "--other-type", &other); !st.ok()) return Fail(st);
  if (other) a.options.other_type = *other;
  absl::StatusOr<std::unique_ptr<compressd::engine::GgufFile>> file =
      compressd::engine::GgufFile::Open(a.model);
  if (!file.ok()) return Fail(file.status());
  std::shared_ptr<const compressd::engine::GgufFile> source(std::move(*file));
  absl::StatusOr<compressd::engine::LlamaModel> model = compressd::engine::LoadGgufModel(source);
  if (!model.ok()) return Fail(model.status());
  std::map<std::string, QuantizedTensor> grids;
  for (compressd::engine::NamedTensor& t : compressd::engine::NamedTensors(&*model)) {
    if (t.name.find("_proj.weight") == std::string::npos) continue;
    a.options.targets.insert(t.name);
    if (a.rtn.empty()) continue;
    std::vector<float> w(t.tensor->data, t.tensor->data + t.tensor->numel());
    absl::StatusOr<QuantizedTensor> q =
        compressd::engine::QuantizeRtn(w.data(), t.tensor->rows(), t.tensor->cols(), grid, t.name);
    if (!q.ok()) return Fail(q.status());
    *t.tensor = compressd::engine::Tensor::Owned(t.tensor->shape, std::move(w));
    grids[t.name] = std::move(*q);
  }
  std::map<std::string, const QuantizedTensor*> quantized;
  for (const auto& [name, q] : grids) quantized[name] = &q;
  absl::StatusOr<compressd::engine::GgufExportReport> r =
      compressd::engine::WriteGgufLlama(*model, source.get(), quantized, a.options, a.out);
  if (!r.ok()) return Fail(r.status());
  for (const compressd::engine::GgufTensorReport& t : r->tensors) {
    std::printf("%-28s %-5s %-12s %s\n", t.gguf_name.c_str(),
                compressd::engine::GgmlTypeName(t.type),
                t.exact_from_grid ? "exact-grid" : "from-floats", t.note.c_str());
  }
  for (const std::string& k : r->dropped_keys) std::printf("dropped key %s\n", k.c_str());
  std::printf("wrote %s: %llu bytes, general.file_type %u\n", r->path.c_str(),
              static_cast<unsigned long long>(r->file_size), r->file_type);
  return 0;
}
