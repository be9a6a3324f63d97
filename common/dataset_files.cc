#include "common/dataset_files.h"

namespace compressd {

std::vector<const v1::FileEntry*> FilesUnder(const v1::Dataset& dataset, const std::string& name) {
  const std::string prefix = name + "/";
  std::vector<const v1::FileEntry*> files;
  for (const v1::FileEntry& f : dataset.files()) {
    if (f.path() == name || f.path().compare(0, prefix.size(), prefix) == 0) files.push_back(&f);
  }
  return files;
}

}  // namespace compressd
