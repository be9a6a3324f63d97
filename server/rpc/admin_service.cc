#include "server/rpc/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "common/util.h"
#include "server/auth/api_key.h"
#include "server/rpc/rpc_auth.h"

namespace compressd {
namespace {

constexpr int kDefaultAuditLimit = 100;
constexpr int kMaxAuditLimit = 1000;

}  // namespace

absl::Status ValidateTenantName(const std::string& name, const std::string& field) {
  const bool ok_size = !name.empty() && name.size() <= 63;
  bool ok_chars = ok_size && name.front() != '-';
  for (char c : name) {
    ok_chars = ok_chars && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  }
  if (!ok_chars) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", ToValidUtf8(name, 80),
                     "\" is not a tenant name (1-63 of a-z, 0-9 and '-', not starting with '-')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateQuota(const v1::Quota& quota) {
  if (quota.max_queued_jobs() < 0) {
    return absl::InvalidArgumentError("quota.max_queued_jobs: must be >= 0 (0: unlimited)");
  }
  if (quota.max_running_jobs() < 0) {
    return absl::InvalidArgumentError("quota.max_running_jobs: must be >= 0 (0: unlimited)");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateTenant(grpc::CallbackServerContext* ctx,
                                                         const v1::CreateTenantRequest* request,
                                                         v1::Tenant* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.CreateTenant", [&](const Principal& who) {
    RETURN_IF_ERROR(ValidateTenantName(request->name(), "name"));
    if (request->name() == kSystemTenant) {
      return absl::InvalidArgumentError("name: \"system\" is reserved for worker keys");
    }
    RETURN_IF_ERROR(ValidateQuota(request->quota()));
    v1::Tenant tenant;
    tenant.set_name(request->name());
    tenant.set_create_time_ms(NowMs());
    *tenant.mutable_quota() = request->quota();
    RETURN_IF_ERROR(store_.InsertTenant(tenant));
    audit_.Record(who, "CreateTenant", tenant.name(), tenant.name());
    return AssignTo(store_.GetTenant(tenant.name()), response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetTenant(grpc::CallbackServerContext* ctx,
                                                      const v1::GetTenantRequest* request,
                                                      v1::Tenant* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.GetTenant", [&](const Principal&) {
    return AssignTo(store_.GetTenant(request->name()), response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListTenants(grpc::CallbackServerContext* ctx,
                                                        const v1::ListTenantsRequest* /*request*/,
                                                        v1::ListTenantsResponse* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.ListTenants", [&](const Principal&) {
    ASSIGN_OR_RETURN(std::vector<v1::Tenant> tenants, store_.ListTenants());
    for (v1::Tenant& t : tenants) *response->add_tenants() = std::move(t);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetQuota(grpc::CallbackServerContext* ctx,
                                                     const v1::SetQuotaRequest* request,
                                                     v1::Tenant* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.SetQuota", [&](const Principal& who) {
    RETURN_IF_ERROR(ValidateQuota(request->quota()));
    RETURN_IF_ERROR(store_.SetQuota(request->tenant(), request->quota()));
    audit_.Record(who, "SetQuota", request->tenant(), request->tenant(),
                  request->quota().ShortDebugString());
    return AssignTo(store_.GetTenant(request->tenant()), response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateKey(grpc::CallbackServerContext* ctx,
                                                      const v1::CreateKeyRequest* request,
                                                      v1::CreateKeyResponse* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.CreateKey", [&](const Principal& who) {
    ASSIGN_OR_RETURN(*response, auth_.CreateKey(*request));
    audit_.Record(who, "CreateKey", response->key().tenant(), response->key().key_id(),
                  RoleName(response->key().role()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListKeys(grpc::CallbackServerContext* ctx,
                                                     const v1::ListKeysRequest* request,
                                                     v1::ListKeysResponse* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.ListKeys", [&](const Principal&) {
    ASSIGN_OR_RETURN(std::vector<v1::ApiKey> keys, store_.ListKeys(request->tenant()));
    for (v1::ApiKey& k : keys) *response->add_keys() = std::move(k);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeKey(grpc::CallbackServerContext* ctx,
                                                      const v1::RevokeKeyRequest* request,
                                                      v1::ApiKey* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.RevokeKey", [&](const Principal& who) {
    ASSIGN_OR_RETURN(*response, auth_.RevokeKey(request->key_id()));
    audit_.Record(who, "RevokeKey", response->tenant(), response->key_id());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListAudit(grpc::CallbackServerContext* ctx,
                                                      const v1::ListAuditRequest* request,
                                                      v1::ListAuditResponse* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.ListAudit", [&](const Principal&) {
    if (request->limit() < 0 || request->limit() > kMaxAuditLimit) {
      return absl::InvalidArgumentError(
          absl::StrCat("limit: must be in [0, ", kMaxAuditLimit, "], got ", request->limit()));
    }
    const int limit = request->limit() == 0 ? kDefaultAuditLimit : request->limit();
    ASSIGN_OR_RETURN(std::vector<v1::AuditEvent> events,
                     store_.ListAudit(request->tenant(), request->after_sequence(), limit));
    for (v1::AuditEvent& e : events) *response->add_events() = std::move(e);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::WhoAmI(grpc::CallbackServerContext* ctx,
                                                   const v1::WhoAmIRequest* /*request*/,
                                                   v1::WhoAmIResponse* response) {
  return AuthorizedUnary(ctx, auth_, "AdminService.WhoAmI", [&](const Principal& who) {
    response->set_key_id(who.key_id);
    response->set_tenant(who.tenant);
    response->set_role(who.role);
    return absl::OkStatus();
  });
}

}  // namespace compressd
