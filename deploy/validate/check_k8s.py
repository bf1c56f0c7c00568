#!/usr/bin/env python3
"""Checks of the rendered Kubernetes manifests (kubectl kustomize output), run by .ci/validate-deploy.sh.

usage: check_k8s.py RENDERED.yaml...

1. Schema: every built-in resource against the Kubernetes OpenAPI schemas that kubernetes-validate ships, strict
   (unknown fields are errors), for the oldest and the newest Kubernetes version checked (KUBE_VERSIONS).
   KEDA's ScaledObject is not a built-in kind: check_keda.mjs validates it.
2. Wiring and policy: Services, PDBs and NetworkPolicies select pods that exist; the HPA scales the facade and
   nothing scales the worker but KEDA; probes (/health liveness, /ready readiness for the facade); resources;
   non-root, read-only root filesystem, no privilege escalation; secrets only through secretKeyRef to a Secret that
   is not part of the manifests; ConfigMap keys are settings the code reads; memory limits equal the ones the
   memory alert compares against; images carry a release tag.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_compose import SECRET_SETTINGS, alert_memory_limits, config_keys, memory_bytes  # noqa: E402

KUBE_VERSIONS = ["1.29.0", "1.37.0"]
NOT_BUILT_IN = {"keda.sh/v1alpha1"}
SECRET_NAME = "agentry-secrets"


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check(path: Path) -> tuple[list[str], int]:
    errors: list[str] = []
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    name = path.stem

    for d in docs:
        ident = f"{name}: {d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("apiVersion") in NOT_BUILT_IN:
            continue
        for v in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path_ = ".".join(str(p) for p in e.path)
                errors.append(f"{ident}: Kubernetes {v} schema: {path_}: {e.message}")
                break
            except kubernetes_validate.SchemaNotFoundError as e:
                errors.append(f"{ident}: {e.message}")
                break

    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
    if set(deployments) != {"agentry-facade", "agentry-worker"}:
        errors.append(f"{name}: expected Deployments agentry-facade and agentry-worker, found {sorted(deployments)}")
    if by_kind.get("Secret"):
        errors.append(f"{name}: renders a Secret; secrets are created out of band and only referenced")

    settings = config_keys()
    for cm in by_kind.get("ConfigMap", []):
        for key in cm.get("data", {}):
            if key not in settings and not key.startswith("OTEL_"):
                errors.append(f"{name}: ConfigMap {cm['metadata']['name']}: {key} is not a setting agentry reads")
            if key in SECRET_SETTINGS:
                errors.append(f"{name}: ConfigMap {cm['metadata']['name']}: {key} is a secret")

    limits = alert_memory_limits()
    for dname, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        job = dname  # agentry-facade / agentry-worker, the scrape job names
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            errors.append(f"{name}: {dname}: pod securityContext.runAsNonRoot must be true")
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: {dname}: automountServiceAccountToken must be false")
        for c in spec["containers"]:
            where = f"{name}: {dname}/{c['name']}"
            image = c.get("image", "")
            if not re.search(r":[\w.-]+$", image) or image.endswith(":latest"):
                errors.append(f"{where}: image {image!r} has no release tag")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        errors.append(f"{where}: resources.{kind}.{r} missing")
            mem = res.get("limits", {}).get("memory")
            if mem is not None and memory_bytes(mem) != limits.get(job):
                errors.append(f"{where}: memory limit {mem} differs from agentry:memory_limit_bytes{{job={job}}} = {limits.get(job)}")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: needs allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
            if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
                errors.append(f"{where}: must drop ALL capabilities")
            live = (c.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            ready = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            if live != "/health":
                errors.append(f"{where}: livenessProbe must GET /health (has {live})")
            want_ready = "/ready" if dname == "agentry-facade" else "/health"
            if ready != want_ready:
                errors.append(f"{where}: readinessProbe must GET {want_ready} (has {ready})")
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = (c.get(probe) or {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    errors.append(f"{where}: {probe} uses unknown port name {port}")
            env = {e["name"]: e for e in c.get("env", [])}
            for key in SECRET_SETTINGS:
                e = env.get(key)
                if e is None:
                    if key == "JWT_SECRET":  # the facade may verify with JWT_PUBLIC_KEY or JWT_JWKS_URL instead
                        continue
                    errors.append(f"{where}: {key} is not set")
                elif "value" in e or (e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") != SECRET_NAME):
                    errors.append(f"{where}: {key} must come from secretKeyRef {SECRET_NAME}")
            for key, e in env.items():
                if key not in settings and not key.startswith("OTEL_"):
                    errors.append(f"{where}: env {key} is not a setting agentry reads")
            if dname == "agentry-facade":
                configured = set(env) | {k for cm in by_kind.get("ConfigMap", []) for k in cm.get("data", {})}
                keys = configured & {"JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"}
                if len(keys) != 1:
                    errors.append(f"{where}: needs exactly one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL (has {sorted(keys)})")

    for svc in by_kind.get("Service", []):
        sel = svc["spec"].get("selector", {})
        targets = [n for n, labels in pod_labels.items() if selects(sel, labels)]
        if not targets:
            errors.append(f"{name}: Service {svc['metadata']['name']} selects no pods")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort")
            for t in targets:
                names = {cp.get("name") for c in deployments[t]["spec"]["template"]["spec"]["containers"] for cp in c.get("ports", [])}
                if isinstance(tp, str) and tp not in names:
                    errors.append(f"{name}: Service {svc['metadata']['name']}: targetPort {tp} is no port of {t}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not any(selects(pdb["spec"]["selector"]["matchLabels"], l) for l in pod_labels.values()):
            errors.append(f"{name}: PodDisruptionBudget {pdb['metadata']['name']} selects no pods")
    covered = set()
    for pdb in by_kind.get("PodDisruptionBudget", []):
        covered |= {n for n, l in pod_labels.items() if selects(pdb["spec"]["selector"]["matchLabels"], l)}
    for missing in set(deployments) - covered:
        errors.append(f"{name}: {missing} has no PodDisruptionBudget")

    hpa_targets = [h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])]
    if "agentry-facade" not in hpa_targets:
        errors.append(f"{name}: no HorizontalPodAutoscaler scales agentry-facade")
    if "agentry-worker" in hpa_targets:
        errors.append(f"{name}: an HPA scales agentry-worker; KEDA's ScaledObject owns its HPA")
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        metrics = [m.get("resource", {}).get("name") for m in h["spec"].get("metrics", [])]
        if "cpu" not in metrics:
            errors.append(f"{name}: HPA {h['metadata']['name']} does not scale on CPU")

    policies = by_kind.get("NetworkPolicy", [])
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} for p in policies):
        errors.append(f"{name}: no default-deny NetworkPolicy")
    for dname, labels in pod_labels.items():
        mine = [p for p in policies if p["spec"].get("podSelector", {}).get("matchLabels") and selects(p["spec"]["podSelector"]["matchLabels"], labels)]
        if not mine:
            errors.append(f"{name}: no NetworkPolicy allows traffic for {dname}")
            continue
        egress_ports = {pt.get("port") for p in mine for rule in p["spec"].get("egress", []) for pt in rule.get("ports", [])}
        for port, what in ((7233, "Temporal"), (5432, "PostgreSQL"), (6379, "Redis"), (53, "DNS")):
            if port not in egress_ports:
                errors.append(f"{name}: {dname} may not reach {what} (egress port {port})")
    return errors, len(docs)


def main(argv: list[str]) -> int:
    errors: list[str] = []
    total = 0
    for arg in argv[1:]:
        e, n = check(Path(arg))
        errors += e
        total += n
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    print(f"  {total} resources in {len(argv) - 1} renderings: strict schemas of Kubernetes {' and '.join(KUBE_VERSIONS)}, "
          "wiring, probes, resources, security context, secret references, settings, memory limits")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
