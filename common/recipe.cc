// Recipe parsing: YAML text -> YAML node tree -> nlohmann::json -> protobuf's
// JSON mapping. The JSON step gives us protobuf's own field-name handling
// (original snake_case names and lowerCamelCase both accepted) and type checks;
// before it, a walk over the JSON against the message descriptors rejects
// unknown fields with their full path (e.g. "stages[0].magnitud").
#include "common/recipe.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/module_pattern.h"
#include "common/recipe_field.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"

namespace compressd {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 32;
// Aliases (*name) share YAML nodes, so a small document can expand
// exponentially; cap the number of nodes converted.
constexpr int kMaxNodes = 100000;
constexpr size_t kMaxRecipeBytes = 1 << 20;
// Every projection, and Mixtral's experts (block_sparse_moe.experts.N.w1/w2/w3).
constexpr char kDefaultInclude[] = ".*(_proj|\\.w[123])$";
constexpr char kDefaultFormat[] = "hf_safetensors";
constexpr int kDefaultWindow = 512;
constexpr int kDefaultWindows = 64;
constexpr int kMaxWindow = 1 << 17;
constexpr int kMaxWindows = 1 << 20;
constexpr size_t kMaxNameLength = 128;

absl::Status RecipeError(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("recipe: ", message));
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : absl::StrCat(parent, ".", key);
}

std::string DisplayPath(const std::string& path) { return path.empty() ? "<top level>" : path; }

bool ParseInt64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char first = s.front();
  if (!(first == '-' || first == '+' || (first >= '0' && first <= '9'))) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  const char first = s.front();
  // Only plain decimal notation; "nan"/"inf"/hex stay strings (protobuf's
  // JSON mapping still accepts "NaN"/"Infinity" strings for double fields).
  if (!(first == '-' || first == '+' || first == '.' || (first >= '0' && first <= '9'))) {
    return false;
  }
  if (s.find_first_of("xX") != std::string::npos) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

// A plain (unquoted) YAML scalar becomes an int, double, bool or null when it
// looks like one; quoted scalars always stay strings.
json ScalarToJson(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted ("..." or '...')
  int64_t i = 0;
  if (ParseInt64(s, &i)) return i;
  double d = 0;
  if (ParseDouble(s, &d)) return d;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
  return s;
}

absl::StatusOr<json> YamlToJson(const YAML::Node& node, const std::string& path, int depth,
                                int* budget) {
  if (depth > kMaxDepth) {
    return RecipeError(absl::StrCat(DisplayPath(path), ": nested deeper than ", kMaxDepth));
  }
  if (--*budget < 0) return RecipeError(absl::StrCat("more than ", kMaxNodes, " values"));
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (size_t i = 0; i < node.size(); ++i) {
        ASSIGN_OR_RETURN(json item,
                         YamlToJson(node[i], absl::StrCat(path, "[", i, "]"), depth + 1, budget));
        array.push_back(std::move(item));
      }
      return array;
    }
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return RecipeError(absl::StrCat(DisplayPath(path), ": keys must be plain strings"));
        }
        const std::string key = entry.first.Scalar();
        const std::string child_path = JoinPath(path, key);
        if (object.contains(key)) {
          return RecipeError(absl::StrCat("duplicate field \"", child_path, "\""));
        }
        ASSIGN_OR_RETURN(object[key], YamlToJson(entry.second, child_path, depth + 1, budget));
      }
      return object;
    }
  }
  return RecipeError(absl::StrCat(DisplayPath(path), ": unsupported YAML node"));
}

const google::protobuf::FieldDescriptor* FindField(const google::protobuf::Descriptor& desc,
                                                   const std::string& key) {
  const google::protobuf::FieldDescriptor* field = desc.FindFieldByName(key);
  if (field == nullptr) field = desc.FindFieldByCamelcaseName(key);
  if (field == nullptr) {
    for (int i = 0; i < desc.field_count(); ++i) {
      if (desc.field(i)->json_name() == key) return desc.field(i);
    }
  }
  return field;
}

std::string KnownFields(const google::protobuf::Descriptor& desc) {
  std::vector<std::string> names;
  names.reserve(desc.field_count());
  for (int i = 0; i < desc.field_count(); ++i) names.push_back(desc.field(i)->name());
  return absl::StrJoin(names, ", ");
}

// Rejects keys that name no field of `desc` and lists/mappings where the
// other is expected, recursing into message fields. protobuf's parser is
// lenient about a single value given for a repeated field; we are not.
// Scalar type mismatches are left to protobuf's parser.
absl::Status CheckKnownFields(const json& value, const google::protobuf::Descriptor& desc,
                              const std::string& path) {
  if (!value.is_object()) return absl::OkStatus();
  for (const auto& [key, child] : value.items()) {
    const std::string child_path = JoinPath(path, key);
    const google::protobuf::FieldDescriptor* field = FindField(desc, key);
    if (field == nullptr) {
      return RecipeError(absl::StrCat("unknown field \"", child_path, "\" (known fields of ",
                                      DisplayPath(path), ": ", KnownFields(desc), ")"));
    }
    if (child.is_null()) continue;  // null means "unset"
    if (field->is_repeated() && !field->is_map() && !child.is_array()) {
      return RecipeError(absl::StrCat(child_path, ": expected a list"));
    }
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if ((field->is_map() || !field->is_repeated()) && !child.is_object()) {
      return RecipeError(absl::StrCat(child_path, ": expected a mapping of fields"));
    }
    if (field->is_map()) continue;
    const google::protobuf::Descriptor& child_desc = *field->message_type();
    if (field->is_repeated()) {
      for (size_t i = 0; i < child.size(); ++i) {
        const std::string item_path = absl::StrCat(child_path, "[", i, "]");
        if (!child[i].is_object()) {
          return RecipeError(absl::StrCat(item_path, ": expected a mapping of fields"));
        }
        RETURN_IF_ERROR(CheckKnownFields(child[i], child_desc, item_path));
      }
    } else {
      RETURN_IF_ERROR(CheckKnownFields(child, child_desc, child_path));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRegex(const std::string& regex, const std::string& field) {
  return ModulePattern::Compile(regex, field).status();
}

// The text source of one evaluation set: `path`, or `dataset_id` + `file`.
absl::Status ValidateEvalSource(const v1::EvalDataset& set, const std::string& path) {
  const bool has_path = !set.path().empty();
  const bool has_dataset = !set.dataset_id().empty() || !set.file().empty();
  if (has_path && has_dataset) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": set either path or dataset_id + file, not both"));
  }
  if (!has_path && !has_dataset) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": set path (a local text file) or dataset_id + file (a file of an uploaded dataset)"));
  }
  if (has_dataset && set.dataset_id().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".dataset_id: required with file"));
  }
  if (has_dataset && set.file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".file: required with dataset_id (the path of a file in the dataset)"));
  }
  if (has_dataset) RETURN_IF_ERROR(ValidateRelativePath(set.file(), path + ".file"));
  return absl::OkStatus();
}

absl::Status ValidateEvaluation(const v1::Evaluation& eval) {
  std::set<std::string> names;
  for (int i = 0; i < eval.perplexity_size(); ++i) {
    const v1::EvalDataset& set = eval.perplexity(i);
    const std::string path = absl::StrCat("evaluation.perplexity[", i, "]");
    RETURN_IF_ERROR(ValidateEvalSource(set, path));
    if (set.window() != 0 && (set.window() < 2 || set.window() > kMaxWindow)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".window: must be in [2, ", kMaxWindow, "], got ", set.window()));
    }
    if (set.windows() != 0 && (set.windows() < 1 || set.windows() > kMaxWindows)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".windows: must be in [1, ", kMaxWindows, "], got ", set.windows()));
    }
    if (set.name().size() > kMaxNameLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".name: longer than ", kMaxNameLength, " characters"));
    }
    if (!set.name().empty() && !names.insert(set.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".name: \"", set.name(), "\" is used by an earlier set"));
    }
  }
  if (eval.kl() && eval.perplexity().empty()) {
    return absl::InvalidArgumentError(
        "evaluation.kl: needs at least one evaluation.perplexity set (KL uses the first)");
  }
  if (eval.skip_dense() && eval.kl()) {
    return absl::InvalidArgumentError("evaluation.skip_dense: kl needs the dense model's outputs");
  }
  if (eval.threads() < 0 || eval.threads() > kMaxRecipeThreads) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.threads: must be in [0, ",
                                                   kMaxRecipeThreads, "], got ", eval.threads()));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// protobuf's JSON writes 64-bit integers as strings ("128"): back to numbers
// in the fields of `desc` that hold them, so the YAML reads `seed: 7`.
void Int64AsNumbers(json& value, const google::protobuf::Descriptor& desc) {
  using google::protobuf::FieldDescriptor;
  if (!value.is_object()) return;
  for (auto& [key, child] : value.items()) {
    const FieldDescriptor* field = FindField(desc, key);
    if (field == nullptr || field->is_map()) continue;
    auto fix = [field](json& v) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        Int64AsNumbers(v, *field->message_type());
        return;
      }
      int64_t i = 0;
      const bool wide = field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                        field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
      if (wide && v.is_string() && ParseInt64(v.get<std::string>(), &i)) v = i;
    };
    if (child.is_array()) {
      for (json& item : child) fix(item);
    } else {
      fix(child);
    }
  }
}

void EmitJson(const json& value, YAML::Emitter& out) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      EmitJson(item, out);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    out << YAML::BeginSeq;
    for (const json& item : value) EmitJson(item, out);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    // Quoted when a plain scalar would read back as another type ("4", "true").
    const std::string text = value.get<std::string>();
    json reread = ScalarToJson(YAML::Node(text));
    if (!reread.is_string()) out << YAML::DoubleQuoted;
    out << text;
  } else {
    out << value.dump();
  }
}

}  // namespace

std::string RecipeToYaml(const v1::Recipe& recipe) {
  std::string text;
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(recipe, &text, print).ok()) return "";
  json doc = json::parse(text);
  Int64AsNumbers(doc, *v1::Recipe::descriptor());
  YAML::Emitter out;
  EmitJson(doc, out);
  return std::string(out.c_str()) + "\n";
}

absl::StatusOr<v1::Recipe> ParseRecipeText(std::string_view text) {
  if (text.size() > kMaxRecipeBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("recipe: larger than ", kMaxRecipeBytes, " bytes"));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return RecipeError(absl::StrCat("syntax error at line ", e.mark.line + 1, ", column ",
                                    e.mark.column + 1, ": ", e.msg));
  }
  json doc;
  try {
    int budget = kMaxNodes;
    ASSIGN_OR_RETURN(doc, YamlToJson(root, "", 0, &budget));
  } catch (const YAML::Exception& e) {
    return RecipeError(e.what());
  }
  if (doc.is_null()) doc = json::object();  // empty document: validation reports what is missing
  if (!doc.is_object()) return RecipeError("the top level must be a mapping of fields");
  RETURN_IF_ERROR(CheckKnownFields(doc, *v1::Recipe::descriptor(), ""));

  v1::Recipe recipe;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  std::string json_text;
  try {
    json_text = doc.dump();
  } catch (const json::exception& e) {  // e.g. a string that is not valid UTF-8
    return RecipeError(e.what());
  }
  const auto status = google::protobuf::util::JsonStringToMessage(json_text, &recipe, options);
  if (!status.ok()) {
    const auto message = status.message();
    return RecipeError(std::string(message.data(), message.size()));
  }
  return recipe;
}

absl::StatusOr<v1::Recipe> ParseRecipeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open recipe file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat("cannot read recipe file ", path));
  absl::StatusOr<v1::Recipe> recipe = ParseRecipeText(text.str());
  if (!recipe.ok()) {
    return absl::Status(recipe.status().code(),
                        absl::StrCat(path, ": ", recipe.status().message()));
  }
  return recipe;
}

void ApplyRecipeDefaults(v1::Recipe* recipe) {
  if (recipe->targets().include().empty()) recipe->mutable_targets()->set_include(kDefaultInclude);
  if (recipe->output().format().empty()) recipe->mutable_output()->set_format(kDefaultFormat);
  ApplyCalibrationDefaults(recipe);
  if (!recipe->has_evaluation()) return;
  for (v1::EvalDataset& set : *recipe->mutable_evaluation()->mutable_perplexity()) {
    if (set.window() == 0) set.set_window(kDefaultWindow);
    if (set.windows() == 0) set.set_windows(kDefaultWindows);
    if (set.name().empty()) {
      const std::string& source = set.path().empty() ? set.file() : set.path();
      set.set_name(source.substr(source.find_last_of('/') + 1));  // npos + 1 == 0
    }
  }
}

bool IsEvaluateOnly(const v1::Recipe& recipe) {
  return recipe.stages().empty() && !recipe.evaluation().perplexity().empty();
}

absl::Status ValidateRecipe(const v1::Recipe& recipe) {
  if (recipe.stages().empty() && recipe.evaluation().perplexity().empty()) {
    return absl::InvalidArgumentError(
        "stages: at least one stage is required (or evaluation.perplexity, for a job that only "
        "evaluates the model)");
  }
  RETURN_IF_ERROR(ValidateRegex(recipe.targets().include(), "targets.include"));
  if (recipe.targets().ignore_size() > ModulePattern::kMaxPatternsPerList) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets.ignore: ", recipe.targets().ignore_size(), " patterns; at most ",
                     ModulePattern::kMaxPatternsPerList));
  }
  for (int i = 0; i < recipe.targets().ignore_size(); ++i) {
    const std::string field = absl::StrCat("targets.ignore[", i, "]");
    if (recipe.targets().ignore(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
    }
    RETURN_IF_ERROR(ValidateRegex(recipe.targets().ignore(i), field));
  }
  const std::string& device = recipe.resources().device();
  if (!device.empty() && device != "any" && device != "cpu" && device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("resources.device: unknown device \"", device, "\" (any, cpu, cuda)"));
  }
  if (!recipe.compute().empty() && recipe.compute() != "fp32" && recipe.compute() != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("compute: unknown precision \"", recipe.compute(), "\" (fp32, bf16)"));
  }
  const std::string& format = recipe.output().format();
  if (!format.empty() && format != kDefaultFormat && format != "gptq" && format != "gguf" &&
      format != "compressed_tensors" && format != "spqr") {
    return absl::InvalidArgumentError(
        absl::StrCat("output.format: unknown format ", format,
                     " (supported: hf_safetensors, gptq, compressed_tensors, gguf, spqr)"));
  }
  const std::string& dtype = recipe.output().dtype();
  if (!dtype.empty() && dtype != "f32" && dtype != "bf16" && dtype != "f16") {
    return absl::InvalidArgumentError(
        absl::StrCat("output.dtype: unknown dtype \"", dtype, "\" (f32, bf16, f16)"));
  }
  if (!dtype.empty() && !format.empty() && format != kDefaultFormat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output.dtype: applies to hf_safetensors outputs only (", format, " has its own types)"));
  }
  RETURN_IF_ERROR(ValidateStages(recipe));
  return ValidateEvaluation(recipe.evaluation());
}

}  // namespace compressd
