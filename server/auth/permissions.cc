#include "server/auth/permissions.h"

#include "absl/strings/str_cat.h"
#include "server/auth/api_key.h"

namespace compressd {

const std::vector<MethodRule>& MethodRules() {
  static const std::vector<MethodRule> kRules = {
      {"CompressionService.UploadModel", Access::kWrite},
      {"CompressionService.GetModel", Access::kRead},
      {"CompressionService.ListModels", Access::kRead},
      {"CompressionService.DeleteModel", Access::kWrite},
      {"CompressionService.UploadDataset", Access::kWrite},
      {"CompressionService.GetDataset", Access::kRead},
      {"CompressionService.ListDatasets", Access::kRead},
      {"CompressionService.DeleteDataset", Access::kWrite},
      {"CompressionService.SubmitJob", Access::kWrite},
      {"CompressionService.GetJob", Access::kRead},
      {"CompressionService.ListJobs", Access::kRead},
      {"CompressionService.CancelJob", Access::kWrite},
      {"CompressionService.DeleteJob", Access::kWrite},
      {"CompressionService.WatchJob", Access::kRead},
      {"CompressionService.DownloadArtifact", Access::kRead},
      {"WorkerService.RegisterWorker", Access::kWorker},
      {"WorkerService.LeaseTask", Access::kWorker},
      {"WorkerService.Heartbeat", Access::kWorker},
      {"WorkerService.ReportEvents", Access::kWorker},
      {"WorkerService.FetchBlob", Access::kWorker},
      {"WorkerService.UploadArtifact", Access::kWorker},
      {"WorkerService.CompleteTask", Access::kWorker},
      {"WorkerService.FailTask", Access::kWorker},
      {"WorkerService.PutCheckpoint", Access::kWorker},
      {"WorkerService.GetCheckpoint", Access::kWorker},
      {"WorkerService.SubmitParts", Access::kWorker},
      {"WorkerService.ClaimPart", Access::kWorker},
      {"WorkerService.GetParts", Access::kWorker},
      {"AdminService.CreateTenant", Access::kAdmin},
      {"AdminService.GetTenant", Access::kAdmin},
      {"AdminService.ListTenants", Access::kAdmin},
      {"AdminService.SetQuota", Access::kAdmin},
      {"AdminService.CreateKey", Access::kAdmin},
      {"AdminService.ListKeys", Access::kAdmin},
      {"AdminService.RevokeKey", Access::kAdmin},
      {"AdminService.ListAudit", Access::kAdmin},
      {"AdminService.WhoAmI", Access::kAnyKey},
  };
  return kRules;
}

bool RoleMayAccess(v1::Role role, Access access) {
  switch (access) {
    case Access::kRead:
      return role == v1::ROLE_ADMIN || role == v1::ROLE_MEMBER || role == v1::ROLE_VIEWER;
    case Access::kWrite:
      return role == v1::ROLE_ADMIN || role == v1::ROLE_MEMBER;
    case Access::kAdmin:
      return role == v1::ROLE_ADMIN;
    case Access::kWorker:
      return role == v1::ROLE_WORKER;
    case Access::kAnyKey:
      return role != v1::ROLE_UNSPECIFIED;
  }
  return false;
}

absl::Status CheckPermission(v1::Role role, absl::string_view method) {
  for (const MethodRule& rule : MethodRules()) {
    if (rule.method != method) continue;
    if (RoleMayAccess(role, rule.access)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        absl::StrCat("role ", RoleName(role), " may not call ", method,
                     rule.access == Access::kWorker ? " (worker keys only)" : ""));
  }
  return absl::InternalError(absl::StrCat("no permission rule for ", method));
}

}  // namespace compressd
