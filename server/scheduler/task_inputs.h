// What a leased task carries besides its lease: the job's model and
// datasets. Shared by TaskLeases and PartLeases.
#pragma once

#include "absl/status/status.h"
#include "compressd/v1/worker.pb.h"
#include "server/store/store.h"

namespace compressd {

// The job's model and datasets into `task`; NOT_FOUND (from the Store) when
// one of them is gone.
absl::Status LoadTaskInputs(Store& store, const v1::Job& job, v1::Task* task);

}  // namespace compressd
