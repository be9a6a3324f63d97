// The isolation matrix: every RPC of CompressionService, WorkerService and
// AdminService, called by every role (and without a key), on objects of the
// caller's own tenant and of another, against the code the policy in
// docs/security.md says it must get. The policy is written out here, apart
// from server/auth/permissions.cc, so a change to either shows up.
#include "tests/unit/server_edge/auth_matrix.h"

namespace compressd::testing::auth_matrix {

std::vector<Row> AuthMatrixTest::CompressionRows() {
  using Api = v1::CompressionService::Stub;
  // Destructive rows act on a fresh object of A's, made by A's member.
  auto fresh_model = [this] { return UploadFakeModel("fresh-" + std::to_string(++fresh_)).id(); };
  std::vector<Row> rows;
  auto add = [&rows](const std::string& method, Kind kind,
                     std::function<grpc::StatusCode(Caller, Api&)> fn) {
    AddRow(rows, "CompressionService", method, kind, &Stubs::api, std::move(fn));
  };
  v1::GetModelRequest get_model;
  get_model.set_model_id(model_);
  v1::GetDatasetRequest get_dataset;
  get_dataset.set_dataset_id(dataset_);
  add("UploadModel", Kind::kCreate, [](Caller, Api& api) {
    v1::Model model;
    auto ctx = ShortContext();
    auto writer = api.UploadModel(ctx.get(), &model);
    for (const auto& m : ModelUploadMessages("m", v1::HF_SAFETENSORS, FakeHfModelFiles())) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish().error_code();
  });
  add("GetModel", Kind::kRead, Unary(&Api::GetModel, get_model));
  add("ListModels", Kind::kList, [this](Caller caller, Api& api) {
    v1::ListModelsResponse resp;
    grpc::Status st = api.ListModels(ShortContext().get(), v1::ListModelsRequest(), &resp);
    if (!st.ok()) return st.error_code();
    bool seen = false;
    for (const auto& m : resp.models()) seen = seen || m.id() == model_;
    return seen == SeesTenantA(caller) ? grpc::OK : kWrongVisibility;
  });
  add("DeleteModel", Kind::kWrite, [=](Caller, Api& api) {
    v1::DeleteModelRequest req;
    req.set_model_id(fresh_model());
    return CallUnary(api, &Api::DeleteModel, req);
  });
  add("UploadDataset", Kind::kCreate, [](Caller, Api& api) {
    v1::Dataset dataset;
    return UploadDatasetAs(api, "d", &dataset);
  });
  add("GetDataset", Kind::kRead, Unary(&Api::GetDataset, get_dataset));
  add("ListDatasets", Kind::kList, [this](Caller caller, Api& api) {
    v1::ListDatasetsResponse resp;
    grpc::Status st = api.ListDatasets(ShortContext().get(), v1::ListDatasetsRequest(), &resp);
    if (!st.ok()) return st.error_code();
    bool seen = false;
    for (const auto& d : resp.datasets()) seen = seen || d.id() == dataset_;
    return seen == SeesTenantA(caller) ? grpc::OK : kWrongVisibility;
  });
  add("DeleteDataset", Kind::kWrite, [=](Caller, Api& api) {
    v1::DeleteDatasetRequest req;
    req.set_dataset_id(UploadDataset("fresh-" + std::to_string(++fresh_)));
    return CallUnary(api, &Api::DeleteDataset, req);
  });
  return rows;
}

std::vector<Row> AuthMatrixTest::JobRows() {
  using Api = v1::CompressionService::Stub;
  auto fresh_job = [this] {
    const std::string model = UploadFakeModel("fresh-" + std::to_string(++fresh_)).id();
    return Submit(model, "fresh-job-" + std::to_string(++fresh_)).id();
  };
  std::vector<Row> rows;
  auto add = [&rows](const std::string& method, Kind kind,
                     std::function<grpc::StatusCode(Caller, Api&)> fn) {
    AddRow(rows, "CompressionService", method, kind, &Stubs::api, std::move(fn));
  };
  v1::GetJobRequest get_job;
  get_job.set_job_id(job_);
  add("SubmitJob", Kind::kWrite, [=](Caller, Api& api) {
    v1::SubmitJobRequest req;
    req.set_model_id(model_);
    *req.mutable_recipe() = MagnitudeRecipe();
    return CallUnary(api, &Api::SubmitJob, req);
  });
  add("GetJob", Kind::kRead, Unary(&Api::GetJob, get_job));
  add("ListJobs", Kind::kList, [this](Caller caller, Api& api) {
    v1::ListJobsResponse resp;
    grpc::Status st = api.ListJobs(ShortContext().get(), v1::ListJobsRequest(), &resp);
    if (!st.ok()) return st.error_code();
    bool seen = false;
    for (const auto& j : resp.jobs()) seen = seen || j.id() == job_;
    return seen == SeesTenantA(caller) ? grpc::OK : kWrongVisibility;
  });
  add("CancelJob", Kind::kWrite, [=](Caller, Api& api) {
    v1::CancelJobRequest req;
    req.set_job_id(fresh_job());
    return CallUnary(api, &Api::CancelJob, req);
  });
  add("DeleteJob", Kind::kWrite, [=](Caller, Api& api) {
    v1::DeleteJobRequest req;
    req.set_job_id(fresh_job());
    return CallUnary(api, &Api::DeleteJob, req);
  });
  add("WatchJob", Kind::kRead, [this](Caller, Api& api) {
    v1::WatchJobRequest req;
    req.set_job_id(job_);
    auto ctx = ShortContext();
    auto reader = api.WatchJob(ctx.get(), req);
    v1::JobEvent event;
    return FirstMessage(*ctx, reader, &event);
  });
  add("DownloadArtifact", Kind::kRead, [this](Caller, Api& api) {
    v1::DownloadArtifactRequest req;
    req.set_artifact_id(artifact_);
    auto ctx = ShortContext();
    auto reader = api.DownloadArtifact(ctx.get(), req);
    v1::DownloadArtifactResponse resp;
    return FirstMessage(*ctx, reader, &resp);
  });
  return rows;
}

namespace {

TEST_F(AuthMatrixTest, EveryMethodForEveryRoleOnOwnAndForeignObjects) {
  std::vector<Row> rows = CompressionRows();
  for (std::vector<Row> more : {JobRows(), WorkerRows(), AdminRows()}) {
    for (Row& row : more) rows.push_back(std::move(row));
  }
  // The table covers every method the three services have.
  std::set<std::string> covered;
  for (const Row& row : rows) covered.insert(row.method);
  for (const auto* service :
       {v1::CompressionService::service_full_name(), v1::WorkerService::service_full_name(),
        v1::AdminService::service_full_name()}) {
    const auto* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      const std::string name = descriptor->name() + "." + descriptor->method(i)->name();
      EXPECT_TRUE(covered.count(name)) << name << " is missing from the isolation matrix";
    }
  }
  int checked = 0;
  for (Row& row : rows) {
    for (const auto& [caller, caller_name] : kCallerNames) {
      Stubs stubs = StubsOf(caller);
      const grpc::StatusCode want = Expected(row.kind, caller);
      const grpc::StatusCode got = row.call(caller, stubs);
      if (want == kAllowed) {
        EXPECT_NE(got, grpc::UNAUTHENTICATED) << row.method << " by " << caller_name;
        EXPECT_NE(got, grpc::PERMISSION_DENIED) << row.method << " by " << caller_name;
      } else {
        EXPECT_EQ(got, want) << row.method << " by " << caller_name;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, static_cast<int>(rows.size() * kCallerNames.size()));
}

TEST_F(AuthMatrixTest, ALeaseWorksOnlyForTheKeyItWasGivenTo) {
  // A second worker key may not touch the first worker's lease.
  const std::string other_key = MintKey("", v1::ROLE_WORKER);
  Connect(Caller::kWorker, other_key);
  Stubs other = StubsOf(Caller::kWorker);
  const std::string job = Submit(model_, "lease-owner").id();
  const std::string worker_id = RegisterWorker();  // the fixture's worker key
  const v1::Task task = Lease(worker_id);
  ASSERT_EQ(task.job_id(), job);
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker_id);
  beat.set_task_id(task.task_id());
  beat.set_lease_token(task.lease_token());
  v1::HeartbeatResponse beat_resp;
  EXPECT_EQ(other.worker->Heartbeat(ShortContext().get(), beat, &beat_resp).error_code(),
            grpc::PERMISSION_DENIED);
  v1::CompleteTaskRequest complete;
  complete.set_task_id(task.task_id());
  complete.set_lease_token(task.lease_token());
  v1::CompleteTaskResponse complete_resp;
  EXPECT_EQ(other.worker->CompleteTask(ShortContext().get(), complete, &complete_resp).error_code(),
            grpc::PERMISSION_DENIED);
  v1::Artifact artifact;
  auto ctx = ShortContext();
  auto writer = other.worker->UploadArtifact(ctx.get(), &artifact);
  v1::UploadArtifactRequest header;
  header.mutable_header()->set_task_id(task.task_id());
  header.mutable_header()->set_lease_token(task.lease_token());
  header.mutable_header()->set_path("forged.bin");
  header.mutable_header()->set_size(1);
  header.mutable_header()->set_sha256(Sha256Hex("x"));
  writer->Write(header);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::PERMISSION_DENIED);
  // The lease's own worker completes it.
  EXPECT_TRUE(Complete(task).ok());
}

}  // namespace
}  // namespace compressd::testing::auth_matrix
