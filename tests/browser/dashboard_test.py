#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's headless Chromium through
Selenium) against the real compressd running real jobs on the real model.

Checks, on the job page while the job runs and after it ends, that every chart
has as many points as the events the server persisted up to the sequence the
page has shown (the per-layer charts: one point per layer; 210 for
SmolLM2-135M's 30 blocks x 7 projections at the end), that EvoPress jobs show
one fitness point per generation and a heat-map cell per searched module, that
the cancel button cancels, that a viewer key sees no cancel button, and that
another tenant's job is not reachable by URL. Saves screenshots at 1400 px and
400 px wide.

Usage: dashboard_test.py BIN_DIR MODEL_GGUF TEXT_DIR SCREENSHOT_DIR [--docs-img DIR]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BLOCKS, PROJECTIONS = 30, 7  # SmolLM2-135M: q k v o gate up down in each of 30 blocks


class Server:
    """compressd with one local worker on free ports in a temp dir."""

    def __init__(self, bin_dir: str, work: str):
        self.bin_dir, self.work = bin_dir, work
        self.out = open(os.path.join(work, "server.out"), "w+")
        self.err = open(os.path.join(work, "server.err"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(bin_dir, "compressd"), "--data-dir", os.path.join(work, "data"),
             "--grpc-port", "0", "--http-port", "0", "--local-workers", "1"],
            stdout=self.out, stderr=self.err)
        for _ in range(300):
            self.out.seek(0)
            m = re.search(r"^compressd listening grpc=(\S+) http=(\S+)", self.out.read(), re.M)
            if m:
                self.grpc, self.http = m.group(1), "http://" + m.group(2)
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("compressd did not start: " + open(self.err.name).read())
        self.admin_key = open(os.path.join(work, "data", "admin.key")).read().strip()

    def ctl(self, *args: str, key: str = "") -> str:
        env = dict(os.environ, COMPRESSD_KEY=key or self.admin_key)
        env.pop("COMPRESSD_KEY_FILE", None)
        res = subprocess.run([os.path.join(self.bin_dir, "compressctl"), "--server", self.grpc, *args],
                             env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"compressctl {' '.join(args)}: {res.stderr}")
        return res.stdout.strip()

    def api(self, path: str, key: str = "") -> dict:
        req = urllib.request.Request(self.http + path,
                                     headers={"Authorization": "Bearer " + (key or self.admin_key)})
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.loads(res.read())

    def status_of(self, path: str, key: str, post: bool = False) -> int:
        headers = {"Authorization": "Bearer " + key}
        if post:
            headers["X-Requested-By"] = "test"
        req = urllib.request.Request(self.http + path, headers=headers, data=b"{}" if post else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status
        except urllib.error.HTTPError as e:
            return e.code

    def events_upto(self, job: str, seq: int) -> list:
        events, after = [], 0
        while after < seq:
            batch = self.api(f"/api/jobs/{job}/events?after={after}&limit=2000")["events"]
            if not batch:
                break
            events += [e for e in batch if int(e["sequence"]) <= seq]
            after = int(batch[-1]["sequence"])
        return events

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def new_key(server: Server, tenant: str, role: str) -> str:
    out = server.ctl("admin", "keys", "create", "--tenant", tenant, "--role", role)
    m = re.search(r"cmpd_\S+", out)
    assert m, out
    return m.group(0)


def browser() -> webdriver.Chrome:
    opts = Options()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                            options=opts)


def login(driver: webdriver.Chrome, server: Server, key: str, path: str) -> None:
    if driver.current_url.startswith(server.http):
        driver.delete_all_cookies()
    driver.get(server.http + path)  # the login form, which comes back to `path`
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return document.body.dataset.ready === '1' || !!document.getElementById('error')"))


def chart_state(driver: webdriver.Chrome) -> dict:
    """The points of every chart and the last event sequence, read in one go."""
    return driver.execute_script("""
      const out = {seq: Number(document.body.dataset.seq || 0), state: document.body.dataset.state};
      for (const f of document.querySelectorAll('figure[data-chart]')) out[f.dataset.chart] = Number(f.dataset.points);
      return out;""")


def expected_points(events: list) -> dict:
    layers = {m: set() for m in ("reconstruction_error", "sparsity", "bits")}
    fitness, best, units = 0, None, set()
    for e in events:
        m = e.get("metric")
        if not m:
            continue
        labels = m.get("labels", {})
        if m["name"] in layers and "layer" in labels:
            layers[m["name"]].add(labels["layer"])
        fitness += m["name"] == "fitness"
        units |= {labels.get("unit")} if m["name"] == "search_unit" else set()
        if m["name"] == "best_levels":
            best = len(labels["levels"].split(","))
    out = {k: len(v) for k, v in layers.items()}
    out["fitness"] = fitness
    out["heatmap"] = best if best and units else 0
    return out


def check_points(driver, server: Server, job: str, what: str) -> dict:
    state = chart_state(driver)
    want = expected_points(server.events_upto(job, state["seq"]))
    for chart, n in want.items():
        assert state[chart] == n, f"{what}: chart {chart} has {state[chart]} points, events say {n} (seq {state['seq']})"
    print(f"{what}: seq {state['seq']}: " + ", ".join(f"{k}={state[k]}" for k in want), flush=True)
    return state


def shoot(driver, server: Server, path: str, name: str, out_dirs: list, height: int = 1800) -> None:
    for width in (1400, 400):
        driver.set_window_size(width, height)
        driver.get(server.http + path)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        time.sleep(0.5)  # charts resize to the new width
        for d in out_dirs:
            driver.save_screenshot(os.path.join(d, f"dashboard-{name}-{width}.png"))
    driver.set_window_size(1400, 1000)


def wait_state(driver, states: set, timeout: int) -> None:
    WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        lambda d: d.execute_script("return document.body.dataset.state") in states)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("model")
    ap.add_argument("text_dir")
    ap.add_argument("screenshots")
    ap.add_argument("--docs-img", default="")
    args = ap.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    shots = [args.screenshots] + ([args.docs_img] if args.docs_img else [])
    work = tempfile.mkdtemp(prefix="dashboard-test-")
    server = Server(args.bin_dir, work)
    driver = browser()
    try:
        run(server, driver, args, work, shots)
    finally:
        driver.quit()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("dashboard browser test: OK")


def submit(server: Server, model: str, data: str, work: str, name: str, recipe: str) -> str:
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(recipe.replace("$DATA", data))
    return server.ctl("jobs", "submit", "--model", model, "--recipe", path, "--dataset", data)


def run(server: Server, driver, args, work: str, shots: list) -> None:
    model = server.ctl("models", "upload", args.model, "--name", "smollm2")
    data = server.ctl("datasets", "upload", args.text_dir, "--name", "text")
    server.ctl("admin", "tenants", "create", "team-b")
    viewer = new_key(server, "default", "viewer")
    other = new_key(server, "team-b", "member")
    calib = "calibration: {dataset_id: $DATA, file: sotu, samples: 16, seq_len: 256}\n"
    job_a = submit(server, model, data, work, "sgpt", "stages: [{sparsegpt: {sparsity: 0.5}}, "
                   "{gptq: {grid: {bits: 4, group_size: 128}}}]\n" + calib +
                   "output: {format: gguf}\nevaluation: {perplexity: [{name: ppl-persuasion, "
                   "dataset_id: $DATA, file: austen/persuasion.txt, windows: 4}], kl: true}\n")
    job_b = submit(server, model, data, work, "evo", "stages: [{evopress: {mode: sparsity, target: 0.5, "
                   "levels: [0.4, 0.5, 0.6], generations: 3, offspring: 4, survivors: [2, 1], "
                   "step_tokens: [128, 256], seed: 7}}]\n" + calib.replace("16", "4").replace("256}", "128}") +
                   "output: {format: gguf}\n")
    job_c = submit(server, model, data, work, "queued", "stages: [{magnitude: {sparsity: 0.5}}]\n")

    # The SparseGPT + GPTQ job, watched live by the admin.
    login(driver, server, server.admin_key, "/jobs/" + job_a)
    WebDriverWait(driver, 600, poll_frequency=0.5).until(
        lambda d: chart_state(d).get("reconstruction_error", 0) >= 20)
    first = check_points(driver, server, job_a, "job A while running")
    assert first["state"] == "RUNNING", first
    shoot(driver, server, "/jobs/" + job_a, "job-running", shots)
    WebDriverWait(driver, 600, poll_frequency=0.5).until(
        lambda d: chart_state(d).get("reconstruction_error", 0) >= first["reconstruction_error"] + 20)
    second = check_points(driver, server, job_a, "job A later")
    assert second["seq"] > first["seq"] and second["reconstruction_error"] > first["reconstruction_error"]

    # Job C waits behind A and B: the admin sees a cancel button, a viewer none.
    login(driver, server, viewer, "/jobs/" + job_c)
    assert driver.execute_script("return document.body.dataset.state") == "QUEUED"
    assert driver.execute_script("return !document.getElementById('cancel') && "
                                 "!document.getElementById('resubmit')"), \
        "a viewer key sees the cancel button or the resubmit form"
    assert server.status_of(f"/api/jobs/{job_c}/cancel", viewer, post=True) == 403
    # Another tenant's job is not reachable by URL.
    login(driver, server, other, "/jobs/" + job_a)
    assert "not found" in driver.find_element(By.ID, "error").text, driver.page_source[:500]
    assert server.status_of("/jobs/" + job_a, other) == 404
    assert server.status_of(f"/api/jobs/{job_a}/events", other) == 404
    login(driver, server, server.admin_key, "/jobs/" + job_c)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "const b = document.getElementById('cancel'); if (b) b.click(); return !!b;"))
    wait_state(driver, {"CANCELLED"}, 30)
    assert server.api(f"/api/jobs/{job_c}")["state"] == "CANCELLED"

    driver.get(server.http + "/jobs/" + job_a)
    wait_state(driver, {"SUCCEEDED", "FAILED"}, 900)
    WebDriverWait(driver, 30).until(lambda d: chart_state(d)["seq"] >= int(
        server.events_upto(job_a, 10**9)[-1]["sequence"]))
    done = check_points(driver, server, job_a, "job A done")
    assert done["state"] == "SUCCEEDED", done
    for chart in ("reconstruction_error", "sparsity", "bits"):
        assert done[chart] == BLOCKS * PROJECTIONS, (chart, done[chart])
    assert done["quality"] == 2 and done["phases"] >= 3, done
    # Read in one script: the page may re-render between two WebDriver calls.
    links = driver.execute_script(
        "return [...document.querySelectorAll(\"#artifacts a[href^='/api/artifacts/']\")]"
        ".map(a => a.textContent)")
    assert any(text.endswith("model.gguf") for text in links), links
    shoot(driver, server, "/jobs/" + job_a, "job", shots, height=2400)

    # EvoPress: a fitness point per generation, a heat-map cell per module.
    driver.get(server.http + "/jobs/" + job_b)
    wait_state(driver, {"SUCCEEDED", "FAILED"}, 900)
    time.sleep(1)
    evo = check_points(driver, server, job_b, "job B (EvoPress) done")
    assert evo["state"] == "SUCCEEDED" and evo["fitness"] == 3, evo
    assert evo["heatmap"] == BLOCKS * PROJECTIONS, evo
    shoot(driver, server, "/jobs/" + job_b, "evopress", shots, height=2400)

    for path, name in (("/jobs", "jobs"), ("/models/" + model, "model"), ("/workers", "workers")):
        shoot(driver, server, path, name, shots)
    # The model page's compare view: one point per job with both bits per
    # parameter and a perplexity (job A; B has no evaluation, C was cancelled).
    driver.get(server.http + "/models/" + model)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    assert chart_state(driver)["compare"] == 1, chart_state(driver)


if __name__ == "__main__":
    sys.exit(main())
