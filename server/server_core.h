// The server core both network edges (gRPC in server/rpc/, HTTP in
// server/http/) forward to: references to the objects compressd's main()
// owns, which must outlive every server given them.
#pragma once

namespace compressd {

class Authenticator;
class BlobStore;
class EventBus;
class JobService;
class ModelRegistry;
class Scheduler;
class ServerMetrics;
class Store;

struct ServerCore {
  Store& store;
  BlobStore& blobs;
  EventBus& bus;
  ModelRegistry& models;
  JobService& jobs;
  Scheduler& scheduler;
  ServerMetrics& metrics;
  Authenticator& auth;
};

}  // namespace compressd
