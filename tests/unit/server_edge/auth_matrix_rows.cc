#include "tests/unit/server_edge/auth_matrix.h"

namespace compressd::testing::auth_matrix {

std::vector<Row> AuthMatrixTest::WorkerRows() {
  using W = v1::WorkerService::Stub;
  std::vector<Row> rows;
  auto add = [&rows](const std::string& method, std::function<grpc::StatusCode(Caller, W&)> fn) {
    AddRow(rows, "WorkerService", method, Kind::kWorker, &Stubs::worker, std::move(fn));
  };
  v1::RegisterWorkerRequest reg;
  reg.set_name("matrix");
  add("RegisterWorker", Unary(&W::RegisterWorker, reg));
  v1::LeaseTaskRequest lease;
  lease.set_wait_ms(1);
  add("LeaseTask", Unary(&W::LeaseTask, lease));
  add("Heartbeat", Unary(&W::Heartbeat));
  add("ReportEvents", Unary(&W::ReportEvents));
  add("CompleteTask", Unary(&W::CompleteTask));
  add("FailTask", Unary(&W::FailTask));
  add("SubmitParts", Unary(&W::SubmitParts));
  add("ClaimPart", Unary(&W::ClaimPart));
  add("GetParts", Unary(&W::GetParts));
  const std::string blob = blob_;
  add("FetchBlob", [blob](Caller, W& w) {
    v1::FetchBlobRequest req;
    req.set_sha256(blob);
    auto ctx = ShortContext();
    auto reader = w.FetchBlob(ctx.get(), req);
    v1::BlobChunk chunk;
    return FirstMessage(*ctx, reader, &chunk);
  });
  add("GetCheckpoint", [](Caller, W& w) {
    auto ctx = ShortContext();
    auto reader = w.GetCheckpoint(ctx.get(), v1::GetCheckpointRequest());
    v1::BlobChunk chunk;
    return FirstMessage(*ctx, reader, &chunk);
  });
  add("UploadArtifact", [](Caller, W& w) {
    v1::Artifact artifact;
    auto ctx = ShortContext();
    auto writer = w.UploadArtifact(ctx.get(), &artifact);
    writer->Write(v1::UploadArtifactRequest());
    writer->WritesDone();
    return writer->Finish().error_code();
  });
  add("PutCheckpoint", [](Caller, W& w) {
    v1::PutCheckpointResponse resp;
    auto ctx = ShortContext();
    auto writer = w.PutCheckpoint(ctx.get(), &resp);
    writer->Write(v1::PutCheckpointRequest());
    writer->WritesDone();
    return writer->Finish().error_code();
  });
  return rows;
}

std::vector<Row> AuthMatrixTest::AdminRows() {
  using A = v1::AdminService::Stub;
  std::vector<Row> rows;
  auto add = [&rows](const std::string& method, Kind kind,
                     std::function<grpc::StatusCode(Caller, A&)> fn) {
    AddRow(rows, "AdminService", method, kind, &Stubs::admin, std::move(fn));
  };
  add("CreateTenant", Kind::kAdmin, [this](Caller, A& a) {
    v1::CreateTenantRequest req;
    req.set_name("fresh-" + std::to_string(++fresh_));
    v1::Tenant tenant;
    return a.CreateTenant(ShortContext().get(), req, &tenant).error_code();
  });
  v1::GetTenantRequest get;
  get.set_name("team-a");
  add("GetTenant", Kind::kAdmin, Unary(&A::GetTenant, get));
  add("ListTenants", Kind::kAdmin, Unary(&A::ListTenants));
  v1::SetQuotaRequest quota;
  quota.set_tenant("team-b");
  add("SetQuota", Kind::kAdmin, Unary(&A::SetQuota, quota));
  v1::CreateKeyRequest key;
  key.set_tenant("team-b");
  key.set_role(v1::ROLE_VIEWER);
  add("CreateKey", Kind::kAdmin, Unary(&A::CreateKey, key));
  add("ListKeys", Kind::kAdmin, Unary(&A::ListKeys));
  add("RevokeKey", Kind::kAdmin, [this](Caller, A& a) {
    v1::RevokeKeyRequest req;
    req.set_key_id(MintKey("team-b", v1::ROLE_VIEWER).substr(5, 17));
    v1::ApiKey revoked;
    return a.RevokeKey(ShortContext().get(), req, &revoked).error_code();
  });
  add("ListAudit", Kind::kAdmin, Unary(&A::ListAudit));
  add("WhoAmI", Kind::kAnyKey, Unary(&A::WhoAmI));
  return rows;
}

}  // namespace compressd::testing::auth_matrix
