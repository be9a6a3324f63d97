#include "server/scheduler/task_inputs.h"

#include <string>

#include "common/status_macros.h"

namespace compressd {

absl::Status LoadTaskInputs(Store& store, const v1::Job& job, v1::Task* task) {
  ASSIGN_OR_RETURN(*task->mutable_model(), store.GetModel(job.model_id()));
  for (const std::string& id : job.dataset_ids()) {
    ASSIGN_OR_RETURN(*task->add_datasets(), store.GetDataset(id));
  }
  return absl::OkStatus();
}

}  // namespace compressd
