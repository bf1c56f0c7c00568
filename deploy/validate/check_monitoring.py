#!/usr/bin/env python3
"""Checks of monitoring/ that promtool does not make (run by .ci/validate-deploy.sh).

  alerts      every alert has a severity, a summary, a description and a runbook_url whose anchor is a heading
              of docs/runbook.md; every alert has a firing and a not-firing case in alerts.test.yml; every metric
              an expression reads is one something exports
  dashboards  every dashboard is valid JSON with a unique uid, unique panel ids, a Prometheus datasource and a
              PromQL expression per target that reads known metrics; writes the expressions (Grafana variables
              replaced) as a rules file, for `promtool check rules` to parse
  grafana     the provisioning files name the dashboards folder and the datasource uid the dashboards default to
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from promql_names import REQUIRED_NEW, known_series, metric_names

REPO = Path(__file__).resolve().parents[2]
MON = REPO / "monitoring"
DASHBOARDS = MON / "grafana" / "dashboards"
PROVISIONING = MON / "grafana" / "provisioning"
RUNBOOK = REPO / "docs" / "runbook.md"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def runbook_anchors() -> set[str]:
    if not RUNBOOK.exists():
        return set()
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", RUNBOOK.read_text(encoding="utf-8"), re.M)}


def load_rules() -> list[dict]:
    doc = yaml.safe_load((MON / "alerts.yml").read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"]]


def recording_names(rules: list[dict]) -> set[str]:
    return {r["record"] for r in rules if "record" in r}


def check_alerts() -> list[str]:
    errors: list[str] = []
    rules = load_rules()
    alerts = [r for r in rules if "alert" in r]
    known = known_series(REPO, recording_names(rules))
    anchors = runbook_anchors()
    if not anchors:
        errors.append(f"{RUNBOOK.relative_to(REPO)}: missing or without headings")

    for r in rules:
        unknown = metric_names(r["expr"]) - known
        if unknown:
            errors.append(f"{r.get('alert') or r.get('record')}: reads unknown metric(s) {sorted(unknown)}")

    names = [a["alert"] for a in alerts]
    for dup in {n for n in names if names.count(n) > 1}:
        errors.append(f"alert {dup} is defined more than once")
    for a in alerts:
        name = a["alert"]
        labels, ann = a.get("labels") or {}, a.get("annotations") or {}
        if labels.get("severity") not in ("critical", "warning", "info"):
            errors.append(f"{name}: labels.severity must be critical, warning or info")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                errors.append(f"{name}: annotation {key} missing")
        url = ann.get("runbook_url", "")
        m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", url)
        if not m:
            errors.append(f"{name}: runbook_url {url!r} is not docs/runbook.md#<anchor>")
        elif m.group(1) != name.lower():
            errors.append(f"{name}: runbook_url anchor #{m.group(1)} is not #{name.lower()}")
        elif m.group(1) not in anchors:
            errors.append(f"{name}: docs/runbook.md has no heading for #{m.group(1)}")

    tests = yaml.safe_load((MON / "alerts.test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests.get("tests", []):
        for case in group.get("alert_rule_test", []) or []:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name in names:
        if name not in firing:
            errors.append(f"{name}: alerts.test.yml has no case where it fires")
        if name not in quiet:
            errors.append(f"{name}: alerts.test.yml has no case where it stays quiet")
    for name in (firing | quiet) - set(names):
        errors.append(f"alerts.test.yml tests an alert that does not exist: {name}")

    print(f"  {len(alerts)} alerts: runbook anchors present, each tested firing and quiet; "
          f"expressions read known metrics"
          + (f" (to be exported by the code: {', '.join(sorted(REQUIRED_NEW))})" if REQUIRED_NEW else " (all exported by the code)"))
    return errors


GRAFANA_VARS = [
    (r"\$__rate_interval|\$\{__rate_interval\}", "5m"),
    (r"\$__interval|\$\{__interval\}", "1m"),
    (r"\$__range|\$\{__range\}", "1h"),
    (r"\$\{?\w+(:\w+)?\}?", ".*"),  # template variables, used only in =~ matchers here
]


def panels_of(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def check_dashboards(emit: Path | None) -> list[str]:
    errors: list[str] = []
    rules = load_rules()
    known = known_series(REPO, recording_names(rules))
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        return [f"no dashboards in {DASHBOARDS.relative_to(REPO)}"]
    uids: dict[str, str] = {}
    exprs: list[tuple[str, str]] = []
    for f in files:
        where = f.relative_to(REPO)
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            errors.append(f"{where}: invalid JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in d:
                errors.append(f"{where}: no {key}")
        uid = d.get("uid", "")
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid):
            errors.append(f"{where}: uid {uid!r} is not a valid Grafana uid")
        if uid in uids:
            errors.append(f"{where}: uid {uid} also used by {uids[uid]}")
        uids[uid] = str(where)
        variables = {v.get("name") for v in d.get("templating", {}).get("list", [])}
        if "datasource" not in variables:
            errors.append(f"{where}: no `datasource` template variable")
        ids = []
        for p in panels_of(d):
            ids.append(p.get("id"))
            if "gridPos" not in p:
                errors.append(f"{where}: panel {p.get('title')!r} has no gridPos")
            if p.get("type") in ("row", "text"):
                continue
            ds = p.get("datasource") or {}
            if ds.get("type") != "prometheus":
                errors.append(f"{where}: panel {p.get('title')!r} does not use the Prometheus datasource")
            targets = p.get("targets") or []
            if not targets:
                errors.append(f"{where}: panel {p.get('title')!r} has no query")
            for t in targets:
                expr = t.get("expr", "")
                if not expr.strip():
                    errors.append(f"{where}: panel {p.get('title')!r} target {t.get('refId')} has no expr")
                    continue
                unknown = metric_names(expr) - known
                if unknown:
                    errors.append(f"{where}: panel {p.get('title')!r} reads unknown metric(s) {sorted(unknown)}")
                concrete = expr
                for pattern, value in GRAFANA_VARS:
                    concrete = re.sub(pattern, value, concrete)
                exprs.append((f"{where.name} / {p.get('title')} / {t.get('refId')}", concrete))
        dup_ids = {i for i in ids if ids.count(i) > 1}
        if dup_ids:
            errors.append(f"{where}: duplicate panel ids {sorted(dup_ids)}")
    if emit is not None:
        group = {"groups": [{"name": "dashboard-expressions", "rules": [
            {"record": f"dashboard:expr_{i}", "expr": e, "labels": {"source": src}} for i, (src, e) in enumerate(exprs)]}]}
        emit.write_text(yaml.safe_dump(group, sort_keys=False, width=1000), encoding="utf-8")
    print(f"  {len(files)} dashboards, {len(exprs)} queries: JSON, uids, panel ids, datasources, known metrics")
    return errors


def check_grafana() -> list[str]:
    errors: list[str] = []
    dashboards_default = set()
    for f in DASHBOARDS.glob("*.json"):
        for v in json.loads(f.read_text(encoding="utf-8")).get("templating", {}).get("list", []):
            if v.get("name") == "datasource":
                dashboards_default.add((v.get("current") or {}).get("value"))
    ds_files = sorted((PROVISIONING / "datasources").glob("*.y*ml"))
    db_files = sorted((PROVISIONING / "dashboards").glob("*.y*ml"))
    if not ds_files or not db_files:
        return ["monitoring/grafana/provisioning needs datasources/*.yml and dashboards/*.yml"]
    uids = set()
    for f in ds_files:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        if doc.get("apiVersion") != 1:
            errors.append(f"{f.relative_to(REPO)}: apiVersion must be 1")
        for ds in doc.get("datasources", []):
            for key in ("name", "type", "uid", "url", "access"):
                if key not in ds:
                    errors.append(f"{f.relative_to(REPO)}: datasource {ds.get('name')!r} has no {key}")
            uids.add(ds.get("uid"))
    for missing in dashboards_default - uids:
        errors.append(f"dashboards default to datasource uid {missing!r}, which no provisioning file defines")
    for f in db_files:
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        if doc.get("apiVersion") != 1:
            errors.append(f"{f.relative_to(REPO)}: apiVersion must be 1")
        for prov in doc.get("providers", []):
            if prov.get("type") != "file" or not (prov.get("options") or {}).get("path"):
                errors.append(f"{f.relative_to(REPO)}: provider {prov.get('name')!r} must be type file with options.path")
    print(f"  provisioning: {len(ds_files)} datasource file(s), {len(db_files)} dashboard provider file(s)")
    return errors


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "alerts":
        errors = check_alerts()
    elif what == "dashboards":
        errors = check_dashboards(Path(argv[2]) if len(argv) > 2 else None)
    elif what == "grafana":
        errors = check_grafana()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for e in errors:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
