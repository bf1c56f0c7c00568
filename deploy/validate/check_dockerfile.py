#!/usr/bin/env python3
"""Checks of deploy/Dockerfile that hadolint does not make (run by .ci/validate-deploy.sh).

Multi-stage on node:20-bookworm-slim with `npm ci` in the build stage; targets facade and worker, each with a
HEALTHCHECK against /health and the right command; a non-root USER; no secret in an ENV or ARG; every COPY'd
file exists and is let through by deploy/Dockerfile.dockerignore; the entrypoint maps exactly the secret settings.
"""
from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_compose import SECRET_SETTINGS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
IGNORE = REPO / "deploy" / "Dockerfile.dockerignore"


def stages(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = (m.group(2) or m.group(1)).lower()
            out[current] = [line]
        elif current:
            out[current].append(line)
    return out


def included(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for an allow-list: the last matching pattern decides."""
    keep = True
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(x, pat) for x in prefixes) or fnmatch.fnmatch(path, pat):
            keep = neg
    return keep


def main() -> int:
    errors: list[str] = []
    text = DOCKERFILE.read_text(encoding="utf-8")
    st = stages(text)
    arg_image = re.search(r"^ARG NODE_IMAGE=(\S+)", text, re.M)
    if not arg_image or arg_image.group(1) != "node:20-bookworm-slim":
        errors.append("base image must be node:20-bookworm-slim (ARG NODE_IMAGE)")
    build = st.get("build", [])
    if not any(re.search(r"\bnpm ci\b", line) for line in build):
        errors.append("the build stage must install with npm ci")
    runtime = st.get("runtime", [])
    users = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        errors.append("the runtime stage must switch to a non-root USER (numeric)")
    for target, script in (("facade", "src/server.ts"), ("worker", "src/worker.ts")):
        lines = st.get(target)
        if not lines:
            errors.append(f"no target {target}")
            continue
        if not lines[0].lower().startswith("from runtime"):
            errors.append(f"target {target} must build FROM runtime")
        if not any(line.upper().startswith("HEALTHCHECK") and target in line for line in lines):
            errors.append(f"target {target} has no HEALTHCHECK probing its /health")
        if not any(line.upper().startswith("CMD") and script in line for line in lines):
            errors.append(f"target {target} does not run {script}")
    for line in text.splitlines():
        m = re.match(r"\s*(ENV|ARG)\s+(.*)", line)
        if m and re.search(r"(SECRET|PASSWORD|TOKEN|_KEYS?|DATABASE_URL|REDIS_URL)\w*\s*=", m.group(2), re.I):
            errors.append(f"secret-looking {m.group(1)} baked into the image: {line.strip()}")
    patterns = [p.strip() for p in IGNORE.read_text(encoding="utf-8").splitlines() if p.strip() and not p.startswith("#")]
    for line in text.splitlines():
        m = re.match(r"\s*COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+(\S+)\s*$", line)
        if not m:
            continue
        for src in m.group(1).split():
            if not (REPO / src).exists():
                errors.append(f"COPY source {src} does not exist")
            elif not included(src, patterns):
                errors.append(f"COPY source {src} is excluded by {IGNORE.name}")
    for leak in (".agentry", ".tools", "node_modules", "deploy/secrets/jwt_secret", ".git"):
        if included(leak, patterns):
            errors.append(f"{IGNORE.name} lets {leak} into the build context")
    local_model = REPO / "src" / "llm" / "local-model.ts"
    if local_model.exists():
        src = local_model.read_text(encoding="utf-8")
        want = {k: re.search(rf"{k} = '([^']+)'", src) for k in ("LOCAL_MODEL_PACKAGE", "LOCAL_MODEL_PACKAGE_VERSION")}
        have = {"LOCAL_MODEL_PACKAGE": re.search(r"^ARG LLM_MODEL_PACKAGE=(\S+)", text, re.M),
                "LOCAL_MODEL_PACKAGE_VERSION": re.search(r"^ARG LLM_MODEL_VERSION=(\S+)", text, re.M)}
        for k in want:
            if want[k] and (not have[k] or have[k].group(1) != want[k].group(1)):
                errors.append(f"the model stage installs {have[k] and have[k].group(1)}, src/llm/local-model.ts wants {k} = {want[k].group(1)}")
        if not any(line.startswith("COPY --from=model") and "/app/.tools/models" in line for line in st.get("worker", [])):
            errors.append("the worker target must copy the embedded model to /app/.tools/models")
    entry = (REPO / "deploy" / "docker-entrypoint.sh").read_text(encoding="utf-8")
    m = re.search(r"for name in ([A-Z_ ]+); do", entry)
    if not m or set(m.group(1).split()) != set(SECRET_SETTINGS):
        errors.append(f"docker-entrypoint.sh must map exactly {', '.join(SECRET_SETTINGS)}")
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    print(f"  stages {', '.join(st)}: base image, npm ci, non-root user, healthchecks, commands, no baked secrets, build context")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
