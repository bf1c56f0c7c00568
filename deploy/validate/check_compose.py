#!/usr/bin/env python3
"""Checks of docker-compose.production.yml beyond its JSON schema (run by .ci/validate-deploy.sh).

The compose-spec schema says the file is well formed; this says it hangs together: every dependency, network,
volume and secret it names exists; `service_healthy` waits only on services with a healthcheck; no secret is
written into the file or into git; the agentry services set only settings the code reads; the facades behind
nginx are the ones Prometheus scrapes; the memory limits are the ones the memory alert compares against; bind
mounts point at files of the repository.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.production.yml"
SECRET_SETTINGS = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PAYLOAD_KEYS", "AUDIT_SEAL_KEYS")  # deploy/docker-entrypoint.sh maps NAME_FILE
SECRETISH = re.compile(r"(PASSWORD|PASSWD|PWD|SECRET|TOKEN|_KEYS?|CREDENTIALS)$")


def interpolate(value):
    """Compose variable interpolation with every variable unset: ${X:-default} -> default, ${X} -> ''."""
    if isinstance(value, str):
        value = re.sub(r"\$\{(\w+)(:?[-?])([^}]*)\}", lambda m: m.group(3) if m.group(2).endswith("-") else "", value)
        value = re.sub(r"(?<!\$)\$\{?\w+\}?", "", value)
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def config_keys() -> set[str]:
    """The environment variables src/config/config.ts reads (keys of its zod schema)."""
    text = (REPO / "src" / "config" / "config.ts").read_text(encoding="utf-8")
    body = text[text.index("const schema = z.object({"):]
    return set(re.findall(r"^  ([A-Z][A-Z0-9_]+): ", body, re.M))


def memory_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", str(text).strip().lower())
    if not m:
        raise ValueError(f"cannot read memory size {text!r}")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def alert_memory_limits() -> dict[str, int]:
    doc = yaml.safe_load((REPO / "monitoring" / "alerts.yml").read_text(encoding="utf-8"))
    limits = {}
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("record") == "agentry:memory_limit_bytes":
                limits[r["labels"]["job"]] = int(re.search(r"vector\((\d+)\)", r["expr"]).group(1))
    return limits


def git_ignored(path: Path) -> bool:
    res = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", str(path.relative_to(REPO))])
    return res.returncode == 0


def env_dict(env) -> dict[str, str]:
    if isinstance(env, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in (env or {}).items()}


def main() -> int:
    errors: list[str] = []
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    doc = interpolate(raw)
    services: dict = doc.get("services", {})
    networks = set((doc.get("networks") or {}).keys())
    volumes = set((doc.get("volumes") or {}).keys())
    secrets = doc.get("secrets") or {}
    settings = config_keys()

    for name, svc in services.items():
        where = f"services.{name}"
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                errors.append(f"{where}: depends on unknown service {dep}")
                continue
            cond = (spec or {}).get("condition", "service_started")
            if cond == "service_healthy" and "healthcheck" not in services[dep]:
                errors.append(f"{where}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            if cond == "service_completed_successfully" and services[dep].get("restart", "no") != "no":
                errors.append(f"{where}: waits for {dep} to complete, but {dep} restarts")
        for net in svc.get("networks") or []:
            if net not in networks:
                errors.append(f"{where}: unknown network {net}")
        for s in svc.get("secrets") or []:
            sname = s if isinstance(s, str) else s.get("source")
            if sname not in secrets:
                errors.append(f"{where}: unknown secret {sname}")
        for v in svc.get("volumes") or []:
            src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith(("./", "../", "/")):
                path = (REPO / src).resolve()
                if not path.exists():
                    errors.append(f"{where}: bind mount source {src} does not exist in the repository")
            elif ":" in (v if isinstance(v, str) else "") and src not in volumes:
                errors.append(f"{where}: named volume {src} is not declared")
        for f in svc.get("env_file") or []:
            path = REPO / (f if isinstance(f, str) else f["path"])
            if not git_ignored(path):
                errors.append(f"{where}: env_file {path.relative_to(REPO)} holds secrets but is not ignored by git")
        image = svc.get("image", "")
        if "build" not in svc and (":" not in image or image.endswith(":latest")):
            errors.append(f"{where}: image {image!r} is not pinned to a version")
        if "healthcheck" not in svc and name not in ("temporal-setup", "temporal-ui", "jaeger"):
            errors.append(f"{where}: no healthcheck")
        env = env_dict(svc.get("environment"))
        for key, value in env.items():
            literal = value and value.lower() not in ("true", "false") and not value.isdigit()
            if SECRETISH.search(key) and literal and not key.endswith("_FILE"):
                errors.append(f"{where}: {key} is written into the compose file; pass it as a secret (NAME_FILE)")
            if re.search(r"://[^/@:\s]+:[^/@\s]+@", value):
                errors.append(f"{where}: {key} carries credentials in a URL; pass it as a secret")
        if "build" in svc:  # an agentry process
            for key in env:
                base = key[:-5] if key.endswith("_FILE") and key[:-5] in SECRET_SETTINGS else key
                if base not in settings and not key.startswith("OTEL_"):
                    errors.append(f"{where}: {key} is not a setting agentry reads (src/config/config.ts)")
            for key in SECRET_SETTINGS:
                if key in env:
                    errors.append(f"{where}: {key} must come from a secret file ({key}_FILE), not the environment")
            needed = ["DATABASE_URL", "PAYLOAD_KEYS", "AUDIT_SEAL_KEYS"]  # required with NODE_ENV=production
            if svc["build"].get("target") == "facade" and not {"JWT_PUBLIC_KEY", "JWT_JWKS_URL"} & set(env):
                needed.append("JWT_SECRET")
            mounted = {s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []}
            for key in needed:
                path = env.get(f"{key}_FILE", "")
                if not path.startswith("/run/secrets/") or path.rsplit("/", 1)[-1] not in mounted:
                    errors.append(f"{where}: {key}_FILE must name one of its secrets under /run/secrets")

    for sname, spec in secrets.items():
        path = REPO / spec.get("file", "")
        if "file" not in spec:
            errors.append(f"secrets.{sname}: only file secrets are expected")
        elif not git_ignored(path):
            errors.append(f"secrets.{sname}: {path.relative_to(REPO)} is not ignored by git (it would be committed)")
        else:
            tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "--error-unmatch", str(path.relative_to(REPO))],
                                     capture_output=True)
            if tracked.returncode == 0:
                errors.append(f"secrets.{sname}: {path.relative_to(REPO)} is tracked by git")

    # The topology the brief asks for, and its agreement with nginx, Prometheus and the alert rules.
    facades = sorted(n for n, s in services.items() if (s.get("build") or {}).get("target") == "facade")
    workers = [n for n, s in services.items() if (s.get("build") or {}).get("target") == "worker"]
    if len(facades) < 2:
        errors.append(f"expected at least two facade services, found {facades}")
    if len(workers) != 1 or int(((services[workers[0]].get("deploy") or {}).get("replicas", 1))) < 3:
        errors.append("expected one worker service with deploy.replicas >= 3")
    nginx_conf = (REPO / "deploy" / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    upstream = sorted(re.findall(r"^\s*server\s+([\w.-]+):3000\b", nginx_conf, re.M))
    if upstream != facades:
        errors.append(f"nginx upstream {upstream} differs from the facade services {facades}")
    prom = yaml.safe_load((REPO / "monitoring" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    scraped = sorted(t.split(":")[0] for sc in jobs.get("agentry-facade", {}).get("static_configs", []) for t in sc["targets"])
    if scraped != facades:
        errors.append(f"Prometheus job agentry-facade scrapes {scraped}, not the facade services {facades}")
    dns = [n for sd in jobs.get("agentry-worker", {}).get("dns_sd_configs", []) for n in sd["names"]]
    if workers and dns != workers:
        errors.append(f"Prometheus job agentry-worker resolves {dns}, not the worker service {workers}")
    limits = alert_memory_limits()
    for job, svc_names in (("agentry-facade", facades), ("agentry-worker", workers)):
        for n in svc_names:
            mem = (((services[n].get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
            if mem is None or memory_bytes(mem) != limits.get(job):
                errors.append(f"services.{n}: memory limit {mem} differs from agentry:memory_limit_bytes{{job={job}}} = {limits.get(job)}")
    ui = env_dict((services.get("temporal-ui") or {}).get("environment"))
    if not ui.get("TEMPORAL_CODEC_ENDPOINT", "").endswith("/codec"):
        errors.append("temporal-ui: TEMPORAL_CODEC_ENDPOINT must point at the facades' /codec endpoints")
    for n in facades:
        origins = env_dict(services[n].get("environment")).get("CODEC_CORS_ORIGINS", "")
        if not origins:
            errors.append(f"services.{n}: CODEC_CORS_ORIGINS must allow the Temporal UI's origin")

    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    print(f"  {len(services)} services: dependencies, healthchecks, networks, volumes, secrets (git-ignored), "
          f"settings, {len(facades)} facades = nginx upstream = Prometheus targets, worker replicas, memory limits")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
