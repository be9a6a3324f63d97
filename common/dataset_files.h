// Which files of an uploaded dataset a recipe names. A recipe names dataset
// text by `dataset_id` + `file` (calibration.file,
// evaluation.perplexity[].file), and `file` is either one file of the dataset
// or a folder of them. This is the one definition of that match: the server
// checks it on SubmitJob, the worker fetches what it selects. Stateless;
// thread-safe.
#pragma once

#include <string>
#include <vector>

#include "compressd/v1/compressd.pb.h"

namespace compressd {

// The entries of `dataset` whose path is `name` or lies under the folder
// `name` (starts with `name` + "/"), in the dataset's order. The pointers
// point into `dataset`. Empty when the dataset has no such file or folder.
std::vector<const v1::FileEntry*> FilesUnder(const v1::Dataset& dataset, const std::string& name);

}  // namespace compressd
