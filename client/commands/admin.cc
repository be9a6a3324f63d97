#include "client/commands/admin.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/output.h"
#include "client/ui/table.h"
#include "common/roles.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::client {
namespace {

using Admin = v1::AdminService::Stub;

// A non-negative integer flag, or `fallback` when absent.
absl::StatusOr<int64_t> CountFlag(const Invocation& inv, const std::string& flag,
                                  int64_t fallback) {
  if (!inv.Has(flag)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(inv.Get(flag), &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": expected a non-negative integer, got \"", inv.Get(flag), "\""));
  }
  return value;
}

absl::StatusOr<v1::Quota> QuotaFrom(const Invocation& inv, const v1::Quota& base) {
  v1::Quota quota = base;
  ASSIGN_OR_RETURN(int64_t bytes, CountFlag(inv, "max-stored-bytes",
                                            static_cast<int64_t>(base.max_stored_bytes())));
  ASSIGN_OR_RETURN(int64_t queued, CountFlag(inv, "max-queued-jobs", base.max_queued_jobs()));
  ASSIGN_OR_RETURN(int64_t running, CountFlag(inv, "max-running-jobs", base.max_running_jobs()));
  quota.set_max_stored_bytes(static_cast<uint64_t>(bytes));
  quota.set_max_queued_jobs(static_cast<int32_t>(queued));
  quota.set_max_running_jobs(static_cast<int32_t>(running));
  return quota;
}

std::string Limit(uint64_t value) { return value == 0 ? "-" : std::to_string(value); }

std::string TenantTable(const std::vector<v1::Tenant>& tenants) {
  std::vector<std::vector<std::string>> rows = {
      {"TENANT", "STORED", "MAX STORED", "QUEUED", "MAX QUEUED", "RUNNING", "MAX RUNNING"}};
  for (const v1::Tenant& t : tenants) {
    rows.push_back({t.name(), std::to_string(t.stored_bytes()), Limit(t.quota().max_stored_bytes()),
                    std::to_string(t.queued_jobs()), Limit(t.quota().max_queued_jobs()),
                    std::to_string(t.running_jobs()), Limit(t.quota().max_running_jobs())});
  }
  return RenderTable(rows);
}

absl::StatusOr<Connection*> Open(CommandContext& context) { return context.connection(); }

}  // namespace

absl::StatusOr<int64_t> ParseDurationSeconds(absl::string_view text, absl::string_view flag) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": \"", text, "\" is not a duration (e.g. 90s, 15m, 12h, 30d)"));
  };
  if (text.size() < 2) return bad();
  int64_t count = 0;
  if (!absl::SimpleAtoi(text.substr(0, text.size() - 1), &count) || count <= 0) return bad();
  switch (text.back()) {
    case 's':
      return count;
    case 'm':
      return count * 60;
    case 'h':
      return count * 3600;
    case 'd':
      return count * 86400;
    default:
      return bad();
  }
}

absl::Status AdminTenantsCreate(CommandContext& context) {
  const Invocation& inv = context.invocation();
  v1::CreateTenantRequest request;
  request.set_name(inv.args[0]);
  ASSIGN_OR_RETURN(*request.mutable_quota(), QuotaFrom(inv, v1::Quota()));
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::Tenant tenant,
                   CallAdmin<v1::Tenant>(*connection, &Admin::CreateTenant, request));
  context.out() << (context.json() ? ToJson(tenant) : tenant.name()) << "\n";
  return absl::OkStatus();
}

absl::Status AdminTenantsList(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::ListTenantsResponse response,
                   CallAdmin<v1::ListTenantsResponse>(*connection, &Admin::ListTenants,
                                                      v1::ListTenantsRequest()));
  context.out() << (context.json()
                        ? ToJson(response) + "\n"
                        : TenantTable({response.tenants().begin(), response.tenants().end()}));
  return absl::OkStatus();
}

absl::Status AdminTenantsQuota(CommandContext& context) {
  const Invocation& inv = context.invocation();
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  v1::GetTenantRequest get;
  get.set_name(inv.args[0]);
  ASSIGN_OR_RETURN(v1::Tenant current, CallAdmin<v1::Tenant>(*connection, &Admin::GetTenant, get));
  v1::SetQuotaRequest request;
  request.set_tenant(inv.args[0]);
  ASSIGN_OR_RETURN(*request.mutable_quota(), QuotaFrom(inv, current.quota()));
  ASSIGN_OR_RETURN(v1::Tenant tenant,
                   CallAdmin<v1::Tenant>(*connection, &Admin::SetQuota, request));
  context.out() << (context.json() ? ToJson(tenant) + "\n" : TenantTable({tenant}));
  return absl::OkStatus();
}

absl::Status AdminKeysCreate(CommandContext& context) {
  const Invocation& inv = context.invocation();
  v1::CreateKeyRequest request;
  ASSIGN_OR_RETURN(v1::Role role, ParseRole(inv.Get("role"), "--role"));
  request.set_role(role);
  request.set_tenant(inv.Get("tenant"));
  if (role != v1::ROLE_WORKER && request.tenant().empty()) {
    return absl::InvalidArgumentError("admin keys create: --tenant T is required for this role");
  }
  if (inv.Has("expires-in")) {
    ASSIGN_OR_RETURN(int64_t seconds, ParseDurationSeconds(inv.Get("expires-in"), "expires-in"));
    request.set_expires_in_seconds(seconds);
  }
  request.set_description(inv.Get("description"));
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::CreateKeyResponse created,
                   CallAdmin<v1::CreateKeyResponse>(*connection, &Admin::CreateKey, request));
  if (context.json()) {
    context.out() << ToJson(created) << "\n";
  } else {
    // The secret goes to stdout alone so `$(compressctl admin keys create ...)` captures it.
    context.out() << created.secret() << "\n";
    context.err() << "key " << created.key().key_id() << " (" << RoleName(created.key().role())
                  << " of " << created.key().tenant()
                  << "): shown once, store it now (e.g. in a 0600 file for --key-file)\n";
  }
  return absl::OkStatus();
}

absl::Status AdminKeysList(CommandContext& context) {
  v1::ListKeysRequest request;
  request.set_tenant(context.invocation().Get("tenant"));
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::ListKeysResponse response,
                   CallAdmin<v1::ListKeysResponse>(*connection, &Admin::ListKeys, request));
  if (context.json()) {
    context.out() << ToJson(response) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"KEY ID", "TENANT", "ROLE", "CREATED", "LAST USED", "EXPIRES", "STATE"}};
  for (const v1::ApiKey& k : response.keys()) {
    rows.push_back({k.key_id(), k.tenant(), RoleName(k.role()), FormatTimeMs(k.create_time_ms()),
                    k.last_used_ms() ? FormatTimeMs(k.last_used_ms()) : "-",
                    k.expire_time_ms() ? FormatTimeMs(k.expire_time_ms()) : "-",
                    k.revoked() ? "revoked" : "active"});
  }
  context.out() << RenderTable(rows);
  return absl::OkStatus();
}

absl::Status AdminKeysRevoke(CommandContext& context) {
  v1::RevokeKeyRequest request;
  request.set_key_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::ApiKey key, CallAdmin<v1::ApiKey>(*connection, &Admin::RevokeKey, request));
  context.out() << (context.json() ? ToJson(key) : "revoked " + key.key_id()) << "\n";
  return absl::OkStatus();
}

absl::Status AdminAuditList(CommandContext& context) {
  const Invocation& inv = context.invocation();
  v1::ListAuditRequest request;
  request.set_tenant(inv.Get("tenant"));
  ASSIGN_OR_RETURN(int64_t after, CountFlag(inv, "after", 0));
  request.set_after_sequence(after);
  request.set_limit(1000);
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::ListAuditResponse response,
                   CallAdmin<v1::ListAuditResponse>(*connection, &Admin::ListAudit, request));
  if (context.json()) {
    context.out() << ToJson(response) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {
      {"SEQ", "TIME", "KEY", "TENANT", "ACTION", "OBJECT"}};
  for (const v1::AuditEvent& e : response.events()) {
    rows.push_back({std::to_string(e.sequence()), FormatTimeMs(e.time_ms()), e.key_id(), e.tenant(),
                    e.action(), e.object_id()});
  }
  context.out() << RenderTable(rows);
  return absl::OkStatus();
}

absl::Status AdminWhoAmI(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, Open(context));
  ASSIGN_OR_RETURN(v1::WhoAmIResponse me,
                   CallAdmin<v1::WhoAmIResponse>(*connection, &Admin::WhoAmI, v1::WhoAmIRequest()));
  context.out() << (context.json()
                        ? ToJson(me)
                        : absl::StrCat(me.key_id(), " ", RoleName(me.role()), " of ", me.tenant()))
                << "\n";
  return absl::OkStatus();
}

}  // namespace compressd::client
