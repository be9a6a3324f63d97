// Scheduling by device (Recipe.resources.device) with fake CPU and GPU
// workers: jobs go where their resources say, jobs that allow both go to an
// idle GPU worker first, and a GPU-only job waits, saying why, until one joins.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "server/scheduler/scheduler.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::JobsEnv;
using ::testing::HasSubstr;

class DeviceSchedulingTest : public ::testing::Test {
 protected:
  v1::Job Job(const std::string& id) { return *env_.store->GetJob(id); }
  std::string WorkerOn(const std::string& name, const std::string& device) {
    v1::RegisterWorkerRequest req;
    req.set_name(name);
    req.set_device(device);
    if (device != "cpu") {
      req.set_device_name("NVIDIA H200");
      req.set_device_memory_bytes(uint64_t{141} << 30);
    }
    auto resp = env_.scheduler.RegisterWorker(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->worker_id() : "";
  }
  v1::Job SubmitFor(const std::string& device) {
    v1::SubmitJobRequest req;
    req.set_model_id("mdl-1");
    *req.mutable_recipe() = testing::ValidRecipe();
    req.mutable_recipe()->mutable_resources()->set_device(device);
    auto job = env_.jobs.Submit(req);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  JobsEnv env_;
};

TEST_F(DeviceSchedulingTest, JobsGoWhereTheirResourcesSay) {
  const std::string cpu = WorkerOn("cpu", "cpu");
  const std::string gpu = WorkerOn("gpu", "cuda:0");
  const v1::Job cuda_job = SubmitFor("cuda");
  const v1::Job cpu_job = SubmitFor("cpu");
  auto on_cpu = env_.Lease(cpu);  // skips the older cuda job
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  EXPECT_EQ(on_cpu->job_id(), cpu_job.id());
  auto on_gpu = env_.Lease(gpu);
  ASSERT_TRUE(on_gpu.ok()) << on_gpu.status();
  EXPECT_EQ(on_gpu->job_id(), cuda_job.id());
  EXPECT_EQ(env_.metrics.gpu_workers_connected().Value(), 1);
  EXPECT_EQ(env_.metrics.gpu_workers_busy().Value(), 1);
  EXPECT_EQ(env_.metrics.gpu_memory_bytes().Value(), 141.0 * (1 << 30));
  // A GPU worker never takes a cpu job.
  const v1::Job cpu_job2 = SubmitFor("cpu");
  const std::string gpu2 = WorkerOn("gpu2", "cuda:1");
  EXPECT_FALSE(env_.Lease(gpu2)->has_recipe());
  EXPECT_EQ(env_.State(cpu_job2.id()), v1::QUEUED);
}

TEST_F(DeviceSchedulingTest, JobsThatAllowBothGoToAnIdleGpuWorkerFirst) {
  const std::string cpu = WorkerOn("cpu", "cpu");
  const std::string gpu = WorkerOn("gpu", "cuda:0");
  const v1::Job any = SubmitFor("any");
  EXPECT_FALSE(env_.Lease(cpu)->has_recipe());  // left for the idle GPU worker
  auto on_gpu = env_.Lease(gpu);
  ASSERT_TRUE(on_gpu.ok());
  EXPECT_EQ(on_gpu->job_id(), any.id());
  // With the GPU worker busy, the CPU worker takes the next one.
  const v1::Job next = SubmitFor("");
  auto on_cpu = env_.Lease(cpu);
  ASSERT_TRUE(on_cpu.ok());
  EXPECT_EQ(on_cpu->job_id(), next.id());
}

TEST_F(DeviceSchedulingTest, AGpuJobWaitsWithAReasonUntilAGpuWorkerJoins) {
  const std::string cpu = WorkerOn("cpu", "cpu");
  const v1::Job job = SubmitFor("cuda");
  EXPECT_FALSE(env_.Lease(cpu)->has_recipe());
  env_.scheduler.Tick();
  EXPECT_EQ(Job(job.id()).state(), v1::QUEUED);
  EXPECT_THAT(Job(job.id()).waiting_reason(), HasSubstr("needs a CUDA GPU worker"));
  const std::string gpu = WorkerOn("gpu", "cuda:0");
  auto task = env_.Lease(gpu);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->job_id(), job.id());
  EXPECT_EQ(Job(job.id()).state(), v1::RUNNING);
  EXPECT_EQ(Job(job.id()).waiting_reason(), "");
}

TEST_F(DeviceSchedulingTest, AnUnknownDeviceIsRefusedAtSubmit) {
  v1::SubmitJobRequest req;
  req.set_model_id("mdl-1");
  *req.mutable_recipe() = testing::ValidRecipe();
  req.mutable_recipe()->mutable_resources()->set_device("tpu");
  auto job = env_.jobs.Submit(req);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("resources.device"));
}

}  // namespace
}  // namespace compressd
