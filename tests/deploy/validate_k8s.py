#!/usr/bin/env python3
"""deploy/k8s renders and validates offline: every overlay through
`kubectl kustomize`, every object against the Kubernetes schemas
(PyPI kubernetes-validate, strict: unknown fields are errors), the one CRD
kind used (ServiceMonitor) against the fields Prometheus Operator needs, and
the policy the manifests promise (checked here, each rule with its reason):
non-root, read-only root filesystem, no privilege escalation, all
capabilities dropped, resource requests and limits, pinned image tags,
probes on the server, no service-account token, network policies covering
every pod. Then, with --checkov PATH, PyPI checkov's Kubernetes scan of each
rendered overlay must pass: its exceptions are skipped in the manifests
themselves (checkov.io/skipN annotations), each with its reason.

Usage: validate_k8s.py SOURCE_DIR [--checkov PATH]
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

OVERLAYS = ("dev", "prod")
K8S_VERSION = "1.33.0"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


def render(source: Path, overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        sys.exit("kubectl not found: it renders the kustomize overlays (kubectl kustomize)")
    out = subprocess.run([kubectl, "kustomize", str(source / "deploy/k8s/overlays" / overlay)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kubectl kustomize {overlay}: {out.stderr}")
    return out.stdout


def checkov(binary: str, overlay: str, rendered: str) -> list:
    """checkov's failures on the rendered overlay (none expected)."""
    with tempfile.NamedTemporaryFile("w", suffix=f"-{overlay}.yaml") as f:
        f.write(rendered)
        f.flush()
        out = subprocess.run([binary, "-f", f.name, "--framework", "kubernetes", "--compact",
                              "--quiet", "--skip-download"], capture_output=True, text=True)
    if out.returncode == 0:
        return []
    return [f"{overlay} checkov: {line}" for line in out.stdout.splitlines()
            if line.startswith(("Check:", "\tFAILED"))] or [f"{overlay} checkov: {out.stderr[-2000:]}"]


def check_service_monitor(obj: dict) -> list:
    spec = obj.get("spec", {})
    errors = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.append("apiVersion must be monitoring.coreos.com/v1")
    if not spec.get("selector", {}).get("matchLabels"):
        errors.append("spec.selector.matchLabels is required")
    for i, ep in enumerate(spec.get("endpoints", [])):
        if set(ep) - {"port", "path", "interval", "scheme", "scrapeTimeout"}:
            errors.append(f"spec.endpoints[{i}]: unknown fields {set(ep) - {'port', 'path', 'interval'}}")
    if not spec.get("endpoints"):
        errors.append("spec.endpoints is required")
    return errors


def check_pod_policy(obj: dict) -> list:
    """The manifests' security and resource policy for one workload."""
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    pod = obj["spec"]["template"]["spec"]
    errors = []
    psc = pod.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{name}: pod must runAsNonRoot with the RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        errors.append(f"{name}: compressd never calls the Kubernetes API; mount no token")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        where = f"{name} container {c['name']}"
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
            errors.append(f"{where}: needs allowPrivilegeEscalation false and a read-only root fs")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            errors.append(f"{where}: must drop ALL capabilities")
        res = c.get("resources", {})
        if not res.get("requests", {}).get("cpu") or not res.get("limits", {}).get("memory"):
            errors.append(f"{where}: needs a cpu request and a memory limit")
        image = c.get("image", "")
        if ":" not in image or image.endswith(":latest"):
            errors.append(f"{where}: image {image!r} must have a pinned tag")
        if obj["metadata"]["name"] == "compressd" and not (c.get("livenessProbe") and
                                                           c.get("readinessProbe")):
            errors.append(f"{where}: the server needs liveness and readiness probes")
    return errors


def check_network_policies(objs: list) -> list:
    """Every workload's pods are selected by some NetworkPolicy."""
    policies = [o["spec"]["podSelector"].get("matchLabels", {}) for o in objs
                if o["kind"] == "NetworkPolicy"]
    errors = []
    for o in objs:
        if o["kind"] not in POD_KINDS:
            continue
        labels = o["spec"]["template"]["metadata"]["labels"]
        if not any(all(labels.get(k) == v for k, v in sel.items()) for sel in policies):
            errors.append(f"{o['kind']}/{o['metadata']['name']}: no NetworkPolicy selects its pods")
    return errors


def validate(objs: list, overlay: str) -> list:
    errors = []
    for obj in objs:
        kind = obj.get("kind")
        if kind == "ServiceMonitor":
            errors += [f"{overlay} ServiceMonitor: {e}" for e in check_service_monitor(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{overlay} {kind}/{obj['metadata']['name']}: {e.message} at "
                          f"{'.'.join(str(p) for p in e.path)}")
        if kind in POD_KINDS:
            errors += [f"{overlay} {e}" for e in check_pod_policy(obj)]
    errors += [f"{overlay} {e}" for e in check_network_policies(objs)]
    return errors


def main() -> None:
    source = Path(sys.argv[1]).resolve()
    checkov_bin = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--checkov" else ""
    errors, kinds = [], {}
    for overlay in OVERLAYS:
        rendered = render(source, overlay)
        objs = [d for d in yaml.safe_load_all(rendered) if d]
        kinds[overlay] = sorted(o["kind"] for o in objs)
        errors += validate(objs, overlay)
        if checkov_bin:
            errors += checkov(checkov_bin, overlay, rendered)
    # What each overlay must hold, so a manifest dropped from a
    # kustomization fails here.
    want = {"dev": {"StatefulSet", "Deployment", "Service", "NetworkPolicy", "ServiceAccount"},
            "prod": {"StatefulSet", "Deployment", "Service", "NetworkPolicy", "ServiceAccount",
                     "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"}}
    for overlay, need in want.items():
        missing = need - set(kinds[overlay])
        if missing:
            errors.append(f"{overlay}: missing {sorted(missing)}")
    if kinds["prod"].count("Deployment") != 2:
        errors.append("prod: needs the CPU and the GPU worker Deployments")
    for e in errors:
        print("deploy/k8s:", e)
    if errors:
        sys.exit(1)
    for overlay in OVERLAYS:
        print(f"deploy/k8s overlays/{overlay}: {len(kinds[overlay])} objects valid "
              f"(Kubernetes {K8S_VERSION}, strict{', checkov' if checkov_bin else ''}): "
              f"{', '.join(kinds[overlay])}")


if __name__ == "__main__":
    main()
