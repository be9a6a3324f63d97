#include "common/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {
namespace {

class AuthInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit AuthInterceptor(std::string header) : header_(std::move(header)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class AuthInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(std::string key) : header_(absl::StrCat("Bearer ", key)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new AuthInterceptor(header_);
  }

 private:
  const std::string header_;
};

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", pem.status().message()));
  if (pem->find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> CredentialsFor(
    const ChannelSecurity& security) {
  if (security.ca_cert_path.empty()) {
    if (!security.cert_path.empty()) {
      return absl::InvalidArgumentError("--cert: needs --ca-cert (TLS)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (security.cert_path.empty() != security.key_path.empty()) {
    return absl::InvalidArgumentError("--cert and --key: give both or neither");
  }
  grpc::SslCredentialsOptions options;
  ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem("--ca-cert", security.ca_cert_path));
  if (!security.cert_path.empty()) {
    ASSIGN_OR_RETURN(options.pem_cert_chain, ReadPem("--cert", security.cert_path));
    ASSIGN_OR_RETURN(options.pem_private_key, ReadPem("--key", security.key_path));
  }
  return grpc::SslCredentials(options);
}

absl::StatusOr<std::string> ReadKeyFile(const std::string& what, const std::string& path) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", content.status().message()));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", path, " is readable by group or others; chmod 600 it"));
  }
  return std::string(absl::StripAsciiWhitespace(*content));
}

}  // namespace

absl::StatusOr<std::string> ListTarget(const std::string& target) {
  if (target.find(',') == std::string::npos) return target;
  std::string family;
  std::vector<std::string> items = absl::StrSplit(target, ',', absl::SkipWhitespace());
  for (std::string& item : items) {
    item = std::string(absl::StripAsciiWhitespace(item));
    if (absl::StartsWith(item, "localhost:")) item = "127.0.0.1" + item.substr(9);
    const bool v6 = !item.empty() && item[0] == '[';
    const size_t colon = item.rfind(':');
    const std::string host = colon == std::string::npos ? item : item.substr(0, colon);
    const std::string bare = v6 && host.size() > 2 ? host.substr(1, host.size() - 2) : host;
    in6_addr addr6{};
    in_addr addr4{};
    const bool ok = colon != std::string::npos &&
                    (v6 ? inet_pton(AF_INET6, bare.c_str(), &addr6) == 1
                        : inet_pton(AF_INET, bare.c_str(), &addr4) == 1);
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--server: \"", item, "\" in a list of replicas must be IP:PORT ([IPv6]:PORT); for host "
          "names use one DNS name with a record per replica (dns:///NAME:PORT) or a load balancer"));
    }
    const std::string this_family = v6 ? "ipv6" : "ipv4";
    if (!family.empty() && family != this_family) {
      return absl::InvalidArgumentError("--server: a list of replicas mixes IPv4 and IPv6");
    }
    family = this_family;
  }
  return absl::StrCat(family, ":", absl::StrJoin(items, ","));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& server,
                                                           const ChannelSecurity& security,
                                                           const grpc::ChannelArguments& args) {
  ASSIGN_OR_RETURN(const std::string target, ListTarget(server));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials, CredentialsFor(security));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> creators;
  if (!security.api_key.empty()) {
    creators.push_back(std::make_unique<AuthInterceptorFactory>(security.api_key));
  }
  std::shared_ptr<grpc::Channel> channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      target, credentials, args, std::move(creators));
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("invalid server address \"", target, "\""));
  }
  return channel;
}

absl::StatusOr<std::string> LoadApiKey(const std::string& key_file) {
  if (!key_file.empty()) return ReadKeyFile("--key-file", key_file);
  const char* key = std::getenv("COMPRESSD_KEY");
  if (key != nullptr && *key != '\0') return std::string(absl::StripAsciiWhitespace(key));
  const char* file = std::getenv("COMPRESSD_KEY_FILE");
  if (file != nullptr && *file != '\0') return ReadKeyFile("$COMPRESSD_KEY_FILE", file);
  return std::string();
}

}  // namespace compressd
