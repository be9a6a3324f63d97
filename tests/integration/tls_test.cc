// TLS end to end with the real binaries and certificates made at test time
// by the openssl CLI: compressctl over TLS, a compress-worker with a client
// certificate (mTLS), a plaintext client and a certificate-less worker
// refused, HTTPS on the HTTP port, and a renewed certificate picked up
// without a restart.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <fstream>
#include <thread>

#include "common/channel.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "compressd/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace compressd::testing {
namespace {

namespace v1 = ::compressd::v1;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

// Runs a shell command line; its exit code.
int Sh(const std::string& command) { return std::system(command.c_str()); }

// A CA, a server certificate for localhost / 127.0.0.1 and a client
// certificate for workers, all signed by the CA, in `dir`.
void MakeCertificates(const std::string& dir, const std::string& server_name = "server") {
  const std::string o = "openssl";
  const std::string q = " > /dev/null 2>&1";
  if (Sh("test -f " + dir + "/ca.pem") != 0) {
    ASSERT_EQ(Sh(o +
                 " req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=compressd-test-ca"
                 " -keyout " +
                 dir + "/ca.key -out " + dir + "/ca.pem" + q),
              0);
  }
  std::ofstream(dir + "/san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  for (const std::string& name : {server_name, std::string("worker")}) {
    const std::string base = dir + "/" + name;
    ASSERT_EQ(Sh(o + " req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + base +
                 ".key -out " + base + ".csr" + q),
              0);
    ASSERT_EQ(
        Sh(o + " x509 -req -days 1 -in " + base + ".csr -CA " + dir + "/ca.pem -CAkey " + dir +
           "/ca.key -CAcreateserial -out " + base + ".pem -extfile " + dir + "/san.ext" + q),
        0);
  }
}

// The serial number of the certificate the TLS server at `address` presents.
std::string PresentedSerial(const std::string& address) {
  const std::string out = "/tmp/compressd-tls-serial-" + std::to_string(getpid());
  Sh("openssl s_client -connect " + address +
     " -servername localhost < /dev/null 2> /dev/null"
     " | openssl x509 -noout -serial > " +
     out + " 2> /dev/null");
  std::string serial = ReadFile(out);
  std::remove(out.c_str());
  return serial;
}

TEST(TlsTest, ClientsAndWorkersOverTlsAndMtls) {
  const std::string root = MakeTempDir("tls");
  MakeCertificates(root);
  const std::string ca = root + "/ca.pem";
  Server server;
  server.set_ca_cert(ca);
  ASSERT_TRUE(
      server.Start(root + "/data", {"--local-workers", "0", "--tls-cert", root + "/server.pem",
                                    "--tls-key", root + "/server.key", "--worker-ca", ca}))
      << ReadFile(root + "/compressd.stderr.log");
  const std::string address = server.grpc_address();

  // A plaintext client is refused; one that verifies the CA gets in.
  CliResult plain = RunCli(address, {"models", "list"});
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_THAT(plain.err, HasSubstr("cannot reach compressd"));
  CliResult whoami = RunCli(address, {"--ca-cert", ca, "admin", "whoami"});
  EXPECT_EQ(whoami.exit_code, 0) << whoami.err;
  EXPECT_THAT(whoami.out, HasSubstr("admin of default"));

  // A worker key over TLS but without a client certificate is refused.
  {
    const std::string worker_key = ReadFile(server.worker_key_file());
    ChannelSecurity security;
    security.api_key = worker_key.substr(0, worker_key.find('\n'));
    security.ca_cert_path = ca;
    auto channel = OpenChannel(address, security, grpc::ChannelArguments());
    ASSERT_TRUE(channel.ok());
    grpc::ClientContext ctx;
    v1::RegisterWorkerRequest req;
    v1::RegisterWorkerResponse resp;
    grpc::Status st = v1::WorkerService::NewStub(*channel)->RegisterWorker(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::UNAUTHENTICATED);
    EXPECT_THAT(st.error_message(), HasSubstr("client certificate"));
  }

  // A worker with a client certificate runs a job submitted over TLS.
  Process worker;
  ASSERT_TRUE(worker.Start(
      {BinDir() + "/compress-worker", "--server", address, "--key-file", server.worker_key_file(),
       "--ca-cert", ca, "--cert", root + "/worker.pem", "--key", root + "/worker.key",
       "--cache-dir", root + "/cache", "--threads", "1"},
      root + "/worker.log"));
  ASSERT_EQ(RunBinary({BinDir() + "/make-tiny-llama", root + "/tiny"}).exit_code, 0);
  std::ofstream(root + "/r.yaml") << "stages:\n  - magnitude: {sparsity: 0.5}\n"
                                     "targets: {include: \".*_proj$\"}\n";
  CliResult model = RunCli(address, {"--ca-cert", ca, "models", "upload", root + "/tiny"});
  ASSERT_EQ(model.exit_code, 0) << model.err;
  CliResult job = RunCli(
      address, {"--ca-cert", ca, "jobs", "submit", "--model",
                model.out.substr(0, model.out.find('\n')), "--recipe", root + "/r.yaml", "--wait"});
  EXPECT_EQ(job.exit_code, 0) << job.err << ReadFile(root + "/worker.log");

  // HTTPS on the HTTP port: probes open, the dashboard only with a key.
  const std::string curl =
      "curl -s -o /dev/null -w '%{http_code}' --cacert " + ca + " https://" + server.http_address();
  const std::string code_file = root + "/code";
  Sh(curl + "/healthz > " + code_file);
  EXPECT_EQ(ReadFile(code_file), "200");
  Sh(curl + "/ > " + code_file);
  EXPECT_EQ(ReadFile(code_file), "401");
  Sh(curl + "/ -H 'Authorization: Bearer " + server.admin_key() + "' > " + code_file);
  EXPECT_EQ(ReadFile(code_file), "200");

  // A renewed certificate is served on both ports without a restart.
  const std::string before = PresentedSerial(address);
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(PresentedSerial(server.http_address()), before);
  MakeCertificates(root, "renewed");
  Sh("cp " + root + "/renewed.key " + root + "/server.key && cp " + root + "/renewed.pem " + root +
     "/server.pem");
  EXPECT_TRUE(WaitFor([&] { return PresentedSerial(address) != before; }, milliseconds(20000)))
      << "still serving " << before;
  EXPECT_EQ(PresentedSerial(server.http_address()), PresentedSerial(address));
  CliResult after = RunCli(address, {"--ca-cert", ca, "admin", "whoami"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

}  // namespace
}  // namespace compressd::testing
