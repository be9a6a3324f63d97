// The isolation matrix's fixture (auth_matrix_test.cc has the tests, the
// CompressionService rows; auth_matrix_rows.cc the WorkerService and
// AdminService rows): callers of every role, tenant A's objects, and the
// policy each row is checked against.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/channel.h"
#include "common/sha256.h"
#include "compressd/v1/admin.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing::auth_matrix {

enum class Caller { kNone, kAdmin, kMemberA, kViewerA, kMemberB, kViewerB, kWorker };
inline const std::map<Caller, const char*> kCallerNames = {
    {Caller::kNone, "no key"},      {Caller::kAdmin, "admin"},      {Caller::kMemberA, "member A"},
    {Caller::kViewerA, "viewer A"}, {Caller::kMemberB, "member B"}, {Caller::kViewerB, "viewer B"},
    {Caller::kWorker, "worker"}};

// What a CompressionService method does to tenant A's objects.
enum class Kind {
  kCreate,  // makes a new object in the caller's tenant
  kList,    // lists the caller's tenant (A's objects visible or not)
  kRead,    // reads one of A's objects
  kWrite,   // changes or deletes one of A's objects
  kWorker,  // WorkerService
  kAdmin,   // AdminService
  kAnyKey,  // WhoAmI
};

// The policy: the code `caller` gets from a method of `kind`. For kWorker
// and kAdmin methods an allowed caller gets whatever the (minimal) request
// earns, so only "not refused" is asserted (kAllowed).
constexpr grpc::StatusCode kAllowed = grpc::StatusCode::DO_NOT_USE;
inline grpc::StatusCode Expected(Kind kind, Caller caller) {
  if (caller == Caller::kNone) return grpc::UNAUTHENTICATED;
  const bool admin = caller == Caller::kAdmin;
  const bool viewer = caller == Caller::kViewerA || caller == Caller::kViewerB;
  const bool foreign = caller == Caller::kMemberB || caller == Caller::kViewerB;
  switch (kind) {
    case Kind::kWorker:
      return caller == Caller::kWorker ? kAllowed : grpc::PERMISSION_DENIED;
    case Kind::kAdmin:
      return admin ? kAllowed : grpc::PERMISSION_DENIED;
    case Kind::kAnyKey:
      return grpc::OK;
    default:
      break;
  }
  if (caller == Caller::kWorker) return grpc::PERMISSION_DENIED;
  switch (kind) {
    case Kind::kCreate:
      return viewer ? grpc::PERMISSION_DENIED : grpc::OK;
    case Kind::kList:
      return grpc::OK;
    case Kind::kRead:
      return foreign ? grpc::NOT_FOUND : grpc::OK;
    case Kind::kWrite:
      return viewer ? grpc::PERMISSION_DENIED : (foreign ? grpc::NOT_FOUND : grpc::OK);
    default:
      return grpc::INTERNAL;
  }
}

// A list answer that shows A's objects to B (or hides them from A) becomes
// this code, so it fails the row.
constexpr grpc::StatusCode kWrongVisibility = grpc::DATA_LOSS;

struct Stubs {
  std::unique_ptr<v1::CompressionService::Stub> api;
  std::unique_ptr<v1::WorkerService::Stub> worker;
  std::unique_ptr<v1::AdminService::Stub> admin;
};

// A call of one method by one caller; returns the status code (for lists:
// kWrongVisibility when A's objects are shown to B or hidden from A).
using CallFn = std::function<grpc::StatusCode(Caller caller, Stubs& stubs)>;

struct Row {
  std::string method;  // "CompressionService.GetModel"
  Kind kind;
  CallFn call;
};

inline bool SeesTenantA(Caller caller) {
  return caller == Caller::kAdmin || caller == Caller::kMemberA || caller == Caller::kViewerA;
}

inline std::unique_ptr<grpc::ClientContext> ShortContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

// Reads the first message of a server stream; OK if one came, else the
// stream's status (the context is cancelled either way).
template <typename Reader, typename Message>
grpc::StatusCode FirstMessage(grpc::ClientContext& ctx, Reader& reader, Message* message) {
  if (reader->Read(message)) {
    ctx.TryCancel();
    reader->Finish();
    return grpc::OK;
  }
  return reader->Finish().error_code();
}

// The code of a unary call of `method` on `stub` with `request`.
template <typename Stub, typename Request, typename Response>
grpc::StatusCode CallUnary(Stub& stub,
                           grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                        Response*),
                           const Request& request) {
  Response response;
  return (stub.*method)(ShortContext().get(), request, &response).error_code();
}

// A row's call that makes that unary call whoever the caller is.
template <typename Stub, typename Request, typename Response>
std::function<grpc::StatusCode(Caller, Stub&)> Unary(
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    Request request = Request()) {
  return [method, request](Caller, Stub& stub) { return CallUnary(stub, method, request); };
}

// Appends the row "<service>.<method>" whose call runs `fn` on the stub
// `member` of the caller's Stubs.
template <typename Stub>
void AddRow(std::vector<Row>& rows, const std::string& service, const std::string& method,
            Kind kind, std::unique_ptr<Stub> Stubs::*member,
            std::function<grpc::StatusCode(Caller, Stub&)> fn) {
  rows.push_back({service + "." + method, kind, [fn, member](Caller caller, Stubs& stubs) {
                    return fn(caller, *(stubs.*member));
                  }});
}

class AuthMatrixTest : public EdgeTest {
 protected:
  AuthMode MakeAuthMode() const override { return AuthMode::kKeys; }

  void SetUp() override {
    EdgeTest::SetUp();
    for (const char* name : {"team-a", "team-b"}) {
      v1::Tenant tenant;
      tenant.set_name(name);
      ASSERT_TRUE(store_->InsertTenant(tenant).ok());
    }
    const std::map<Caller, std::pair<const char*, v1::Role>> keys = {
        {Caller::kAdmin, {"default", v1::ROLE_ADMIN}},
        {Caller::kMemberA, {"team-a", v1::ROLE_MEMBER}},
        {Caller::kViewerA, {"team-a", v1::ROLE_VIEWER}},
        {Caller::kMemberB, {"team-b", v1::ROLE_MEMBER}},
        {Caller::kViewerB, {"team-b", v1::ROLE_VIEWER}},
        {Caller::kWorker, {"", v1::ROLE_WORKER}}};
    for (const auto& [caller, spec] : keys) Connect(caller, MintKey(spec.first, spec.second));
    Connect(Caller::kNone, "");
    // The fixture's helpers run as A's member and as the worker key.
    api_ = v1::CompressionService::NewStub(channels_[Caller::kMemberA]);
    worker_api_ = v1::WorkerService::NewStub(channels_[Caller::kWorker]);
    // A's objects; A's job run to the end by the worker, with an artifact.
    model_ = UploadFakeModel("a-model").id();
    dataset_ = UploadDataset("a-data");
    job_ = Submit(model_, "a-job").id();
    const std::string worker_id = RegisterWorker();
    const v1::Task task = Lease(worker_id);
    ASSERT_EQ(task.job_id(), job_);
    v1::Artifact artifact;
    ASSERT_TRUE(UploadArtifact(task, "out.bin", "bytes", &artifact).ok());
    artifact_ = artifact.id();
    blob_ = artifact.sha256();
    ASSERT_TRUE(Complete(task).ok());
  }

  std::string MintKey(const std::string& tenant, v1::Role role) {
    v1::CreateKeyRequest req;
    req.set_tenant(tenant);
    req.set_role(role);
    absl::StatusOr<v1::CreateKeyResponse> created = auth_->CreateKey(req);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->secret() : "";
  }

  void Connect(Caller caller, const std::string& key) {
    keys_[caller] = key;
    ChannelSecurity security;
    security.api_key = key;
    auto channel = OpenChannel(server_->address(), security, grpc::ChannelArguments());
    ASSERT_TRUE(channel.ok());
    channels_[caller] = *channel;
  }

  Stubs StubsOf(Caller caller) {
    return {v1::CompressionService::NewStub(channels_[caller]),
            v1::WorkerService::NewStub(channels_[caller]),
            v1::AdminService::NewStub(channels_[caller])};
  }

  std::string UploadDataset(const std::string& name) {
    v1::Dataset dataset;
    EXPECT_EQ(UploadDatasetAs(*api_, name, &dataset), grpc::OK);
    return dataset.id();
  }

  static grpc::StatusCode UploadDatasetAs(v1::CompressionService::Stub& api,
                                          const std::string& name, v1::Dataset* dataset) {
    auto ctx = ShortContext();
    auto writer = api.UploadDataset(ctx.get(), dataset);
    v1::UploadDatasetRequest header;
    header.mutable_header()->set_name(name);
    v1::FileEntry* f = header.mutable_header()->add_files();
    f->set_path("text.txt");
    f->set_size(5);
    f->set_sha256(Sha256Hex("hello"));
    v1::UploadDatasetRequest chunk;
    chunk.mutable_chunk()->set_file_index(0);
    chunk.mutable_chunk()->set_data("hello");
    if (writer->Write(header)) writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish().error_code();
  }

  std::vector<Row> CompressionRows();  // models and datasets
  std::vector<Row> JobRows();
  std::vector<Row> WorkerRows();
  std::vector<Row> AdminRows();

  std::map<Caller, std::shared_ptr<grpc::Channel>> channels_;
  std::map<Caller, std::string> keys_;  // "" for kNone
  std::string model_, dataset_, job_, artifact_, blob_;
  int fresh_ = 0;  // names of objects made for destructive rows
};

}  // namespace compressd::testing::auth_matrix
