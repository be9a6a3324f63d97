// Human-readable renderings of API messages for the non --json output.
// Pure functions of the message.
#pragma once

#include <string>
#include <vector>

#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

std::string DescribeModel(const v1::Model& model);
std::string DescribeDataset(const v1::Dataset& dataset);
std::string DescribeJob(const v1::Job& job);

std::string ModelTable(const std::vector<v1::Model>& models);
std::string DatasetTable(const std::vector<v1::Dataset>& datasets);
std::string JobTable(const std::vector<v1::Job>& jobs);
std::string ArtifactTable(const std::vector<v1::Artifact>& artifacts);

// "RUNNING" for v1::RUNNING.
std::string StateName(v1::JobState state);

}  // namespace compressd::client
