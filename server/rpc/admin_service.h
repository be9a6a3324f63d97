// The AdminService (admin.proto): tenants and their quotas, API keys, the
// audit trail, and WhoAmI. Every method but WhoAmI needs an admin key.
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "compressd/v1/admin.grpc.pb.h"
#include "server/auth/audit_log.h"
#include "server/auth/authenticator.h"
#include "server/store/store.h"

namespace compressd {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(Store& store, Authenticator& auth, AuditLog& audit)
      : store_(store), auth_(auth), audit_(audit) {}

  grpc::ServerUnaryReactor* CreateTenant(grpc::CallbackServerContext* ctx,
                                         const v1::CreateTenantRequest* request,
                                         v1::Tenant* response) override;
  grpc::ServerUnaryReactor* GetTenant(grpc::CallbackServerContext* ctx,
                                      const v1::GetTenantRequest* request,
                                      v1::Tenant* response) override;
  grpc::ServerUnaryReactor* ListTenants(grpc::CallbackServerContext* ctx,
                                        const v1::ListTenantsRequest* request,
                                        v1::ListTenantsResponse* response) override;
  grpc::ServerUnaryReactor* SetQuota(grpc::CallbackServerContext* ctx,
                                     const v1::SetQuotaRequest* request,
                                     v1::Tenant* response) override;
  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* ctx,
                                      const v1::CreateKeyRequest* request,
                                      v1::CreateKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* ctx,
                                     const v1::ListKeysRequest* request,
                                     v1::ListKeysResponse* response) override;
  grpc::ServerUnaryReactor* RevokeKey(grpc::CallbackServerContext* ctx,
                                      const v1::RevokeKeyRequest* request,
                                      v1::ApiKey* response) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* ctx,
                                      const v1::ListAuditRequest* request,
                                      v1::ListAuditResponse* response) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* request,
                                   v1::WhoAmIResponse* response) override;

 private:
  Store& store_;
  Authenticator& auth_;
  AuditLog& audit_;
};

// A tenant name: [a-z0-9][a-z0-9-]{0,62}. INVALID_ARGUMENT naming `field`.
absl::Status ValidateTenantName(const std::string& name, const std::string& field);
// Quota fields are not negative. INVALID_ARGUMENT naming the field.
absl::Status ValidateQuota(const v1::Quota& quota);

}  // namespace compressd
