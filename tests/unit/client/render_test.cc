// Pure rendering: progress bar, sizes and times, event lines, tables.
#include <sstream>
#include <string>

#include "client/ui/event_lines.h"
#include "client/ui/progress_bar.h"
#include "client/ui/table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

ProgressView View(std::string stage, int64_t current, int64_t total, double elapsed = 12) {
  ProgressView view;
  view.stage = std::move(stage);
  view.current = current;
  view.total = total;
  view.elapsed_seconds = elapsed;
  return view;
}

TEST(ProgressBarTest, RendersStageCountsPercentAndElapsed) {
  ProgressView view = View("prune", 11, 22);
  view.message = "model.layers.10";
  EXPECT_EQ(RenderProgressBar(view, 80),
            "prune [###############---------------] 11/22   50%  00:12  model.layers.10");
}

TEST(ProgressBarTest, EmptyFullAndOverflow) {
  EXPECT_EQ(RenderProgressBar(View("load", 0, 4, 0), 60),
            "load [------------------------------] 0/4    0%  00:00");
  EXPECT_EQ(RenderProgressBar(View("load", 4, 4, 61), 60),
            "load [##############################] 4/4  100%  01:01");
  // current beyond total is clamped.
  EXPECT_EQ(RenderProgressBar(View("x", 9, 4, 0), 60),
            "x [##############################] 4/4  100%  00:00");
}

TEST(ProgressBarTest, UnknownTotalHasNoPercentage) {
  EXPECT_EQ(RenderProgressBar(View("", 3, 0, 3725), 60),
            "working [                              ] 3/?  1:02:05");
}

TEST(ProgressBarTest, NarrowTerminalShrinksBarAndTruncates) {
  const std::string line = RenderProgressBar(View("prune", 1, 2), 30);
  EXPECT_EQ(line.size(), 30u);
  EXPECT_EQ(line, "prune [#####-----] 1/2   50%  ");
  const std::string wide = RenderProgressBar(View("prune", 1, 2), 200);
  EXPECT_EQ(wide, "prune [###############---------------] 1/2   50%  00:12");
}

TEST(ProgressBarTest, Bytes) {
  ProgressView view = View("upload", 3 << 20, 12 << 20, 2);
  view.bytes = true;
  EXPECT_EQ(RenderProgressBar(view, 100),
            "upload [#######-----------------------] 3.00 MiB/12.0 MiB   25%  00:02");
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(int64_t{5} << 30), "5.00 GiB");
  EXPECT_EQ(FormatElapsed(0), "00:00");
  EXPECT_EQ(FormatElapsed(599.9), "09:59");
}

TEST(ProgressBarTest, WriterClearsAndFinishes) {
  std::ostringstream out;
  {
    ProgressBar bar(out, 41);
    bar.Update(View("s", 1, 2, 0));
    bar.Clear();
    bar.Redraw();
  }  // destructor finishes the line
  const std::string line = RenderProgressBar(View("s", 1, 2, 0), 40);
  EXPECT_EQ(out.str(), "\r" + line + "\x1b[K" + "\r\x1b[K" + "\r" + line + "\x1b[K" + "\n");
}

v1::JobEvent Metric(int64_t seq, const std::string& layer, const std::string& name, double value) {
  v1::JobEvent event;
  event.set_sequence(seq);
  v1::MetricPoint* metric = event.mutable_metric();
  metric->set_name(name);
  metric->set_value(value);
  if (!layer.empty()) (*metric->mutable_labels())["layer"] = layer;
  return event;
}

TEST(EventLinesTest, FormatsStateAndLog) {
  v1::JobEvent event;
  event.mutable_state()->set_from(v1::QUEUED);
  event.mutable_state()->set_to(v1::RUNNING);
  EXPECT_EQ(FormatEvent(event), "state QUEUED -> RUNNING");
  event.mutable_state()->set_reason("lease lost");
  EXPECT_EQ(FormatEvent(event), "state QUEUED -> RUNNING: lease lost");
  event.mutable_state()->set_from(v1::JOB_STATE_UNSPECIFIED);
  event.mutable_state()->set_to(v1::QUEUED);
  event.mutable_state()->clear_reason();
  EXPECT_EQ(FormatEvent(event), "state QUEUED");

  v1::JobEvent log;
  log.mutable_log()->set_level("warning");
  log.mutable_log()->set_message("slow disk");
  EXPECT_EQ(FormatEvent(log), "[warning] slow disk");
}

TEST(EventLinesTest, MergesConsecutiveMetricsOfOneLayer) {
  const std::string up = "model.layers.0.mlp.up_proj";
  const std::string down = "model.layers.0.mlp.down_proj";
  EventLines lines;
  EXPECT_THAT(lines.Add(Metric(1, up, "sparsity", 0.5)), IsEmpty());
  EXPECT_THAT(lines.Add(Metric(2, up, "seconds", 0.0123)), IsEmpty());
  v1::JobEvent progress;
  progress.mutable_progress()->set_stage("prune");
  EXPECT_THAT(lines.Add(progress), IsEmpty());
  EXPECT_THAT(lines.Add(Metric(3, down, "sparsity", 0.5)),
              ElementsAre("layer " + up + " sparsity=0.500 seconds=0.01"));
  v1::JobEvent done;
  done.mutable_state()->set_from(v1::RUNNING);
  done.mutable_state()->set_to(v1::SUCCEEDED);
  EXPECT_THAT(lines.Add(done),
              ElementsAre("layer " + down + " sparsity=0.500", "state RUNNING -> SUCCEEDED"));
  EXPECT_THAT(lines.Flush(), IsEmpty());
  EXPECT_THAT(lines.Add(Metric(4, "", "tensors", 7)), IsEmpty());
  EXPECT_THAT(lines.Flush(), ElementsAre("tensors=7"));
}

TEST(EventLinesTest, MetricValues) {
  EXPECT_EQ(FormatMetricValue("sparsity", 0.5), "0.500");
  EXPECT_EQ(FormatMetricValue("seconds", 12.346), "12.35");
  EXPECT_EQ(FormatMetricValue("params", 1234567), "1234567");
  EXPECT_EQ(FormatMetricValue("loss", 1.5e-5), "1.5e-05");
}

TEST(TableTest, AlignsColumns) {
  EXPECT_EQ(RenderTable({{"ID", "NAME"}, {"m-1", "llama"}, {"model-22", "x"}}),
            "ID        NAME\n"
            "m-1       llama\n"
            "model-22  x\n");
}

}  // namespace
}  // namespace compressd::client
