#!/usr/bin/env python3
"""Checks that .github/workflows/ci.yml mirrors .ci/run (run by .ci/validate-deploy.sh; the workflow's schema is
checked separately with check-jsonschema's vendored GitHub workflow schema).

Every npm command .ci/run runs, and the deploy validation, run in some job; PostgreSQL and Redis are services of
the job that runs `npm test`; the replay tests run; both images are built with docker/build-push-action and not
pushed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    errors: list[str] = []
    run_script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    wanted = sorted(set(re.findall(r"^\s*(npm (?:ci|test|run [\w:-]+))", run_script, re.M)))
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    jobs = wf.get("jobs", {})
    runs = {name: " \n".join(s.get("run", "") for s in job.get("steps", [])) for name, job in jobs.items()}
    everything = "\n".join(runs.values())
    for cmd in wanted + ["npm run test:replay", ".ci/validate-deploy.sh"]:
        if cmd not in everything:
            errors.append(f"ci.yml never runs `{cmd}`")
    for name, text in runs.items():
        if re.search(r"^\s*npm test\b", text, re.M):
            services = set((jobs[name].get("services") or {}).keys())
            if not {"postgres", "redis"} <= services:
                errors.append(f"job {name} runs npm test without postgres and redis services")
    targets = set()
    for job in jobs.values():
        matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("target", [])
        for s in job.get("steps", []):
            if str(s.get("uses", "")).startswith("docker/build-push-action@"):
                w = s.get("with") or {}
                if w.get("push") is not False:
                    errors.append("docker/build-push-action must run with push: false")
                if w.get("file") != "deploy/Dockerfile":
                    errors.append("docker/build-push-action must build deploy/Dockerfile")
                t = str(w.get("target", ""))
                targets |= set(matrix) if "matrix.target" in t else {t}
    if targets != {"facade", "worker"}:
        errors.append(f"images built: {sorted(targets)}, expected facade and worker")
    node = {str((s.get("with") or {}).get("node-version")) for j in jobs.values() for s in j.get("steps", [])
            if str(s.get("uses", "")).startswith("actions/setup-node@")}
    if node != {"20"}:
        errors.append(f"setup-node versions {sorted(node)}, expected 20")
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    print(f"  {len(jobs)} jobs; mirrors .ci/run ({', '.join(wanted)}), replay tests, deploy validation, images facade and worker")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
