"""Generate N realistic, valid, distinct Chef Courier job files for benchmarks.

    python bench/gen_jobs.py N OUTDIR [--format json|yaml|toml|mixed] [--seed S]

Files land in OUTDIR/jobs.d/<team>/<env>/<name>.<ext>, about 4 KB each in JSON (like Chef's
samples): 1-3 target groups with different nodeListTypes, 2-5 shell steps with output rules,
conditions, failure behaviour and limits; some jobs recur on an RRULE with exception rules. The
same N, format and seed give byte-identical files. Not part of the package or the test suite.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

FORMATS = ("json", "yaml", "toml")
EXTENSION = {"json": ".json", "yaml": ".yaml", "toml": ".toml"}

TEAMS = ("platform", "payments", "search", "identity", "storage", "edge", "data", "mobile")
ENVS = ("prod", "staging", "dev", "lab")
SERVICES = (
    "nginx", "postgresql", "redis", "chef-client", "haproxy", "kafka", "elasticsearch",
    "memcached", "rabbitmq", "sshd", "node-exporter", "fluent-bit", "consul", "vault",
)  # fmt: skip
VERBS = ("restart", "patch", "rotate-logs", "health-check", "upgrade", "audit", "backup",
         "cleanup", "rollout", "drain", "verify", "reload")  # fmt: skip
PLATFORMS = ("linux", "windows", "darwin")

SCHEDULES = (
    "RRULE:FREQ=DAILY;INTERVAL=1",
    "RRULE:FREQ=HOURLY;INTERVAL=6",
    "RRULE:FREQ=MINUTELY;COUNT=10",
    "RRULE:DTSTART=20260101T020000Z;FREQ=WEEKLY;BYDAY=MO,WE,FR",
    "RRULE:FREQ=WEEKLY;BYDAY=SA;BYHOUR=3;BYMINUTE=30",
    "RRULE:DTSTART=20260315;FREQ=MONTHLY;BYMONTHDAY=1",
)
EXCEPTIONS = (
    "RRULE:FREQ=MINUTELY;INTERVAL=3",
    "RRULE:FREQ=WEEKLY;BYDAY=SU",
    "RRULE:FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24,25,31",
    "RRULE:DTSTART=20261120;FREQ=DAILY;COUNT=5",
)

LINUX_CHECKS = (
    "systemctl is-active {svc} >/dev/null && echo running || echo stopped",
    "df -P / | awk 'NR==2 {{print $5}}' | tr -d '%'",
    "test -f /var/run/{svc}.pid && echo present || echo missing",
    "rpm -q {svc} >/dev/null 2>&1 && echo installed || echo absent",
    "curl -fsS -o /dev/null -w '%{{http_code}}' http://localhost:{port}/health",
    "free -m | awk '/Mem:/ {{print $7}}'",
)
LINUX_ACTIONS = (
    "sudo systemctl restart {svc}",
    "sudo systemctl reload {svc} 2>&1 >/dev/null",
    "sudo yum update -y {svc} 2>&1 | tail -n 20",
    "sudo journalctl -u {svc} --since '1 hour ago' --no-pager | tail -n 50",
    "sudo find /var/log/{svc} -name '*.log.*' -mtime +{days} -delete",
    "sudo tar czf /var/backups/{svc}-$(date +%Y%m%d).tgz /etc/{svc}",
    "sudo chef-client --once --override-runlist 'recipe[{svc}::default]'",
    "sleep $((RANDOM % {days}))",
)
WINDOWS_ACTIONS = (
    "Restart-Service -Name {svc} -Force",
    "Get-Service -Name {svc} | Select-Object -ExpandProperty Status",
    "Get-ChildItem C:\\ProgramData\\{svc}\\logs -Filter *.log | Remove-Item",
    "timeout {days}",
)
DARWIN_ACTIONS = (
    "sudo launchctl kickstart -k system/com.example.{svc}",
    "softwareupdate --list 2>&1 | tail -n 5",
)
ATTRIBUTES = (
    ("kernel_name", "=", ["Linux"]),
    ("platform", "=", ["ubuntu", "centos", "rhel"]),
    ("hostname", "MATCHES", ["^web-[0-9]+\\.example\\.com$"]),
    ("ipaddress", "CONTAINS", ["10.20."]),
    ("platform_version", "!=", ["6.10"]),
    ("roles", "CONTAINS", ["{svc}"]),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _amount(kind: str, value: int) -> dict[str, Any]:
    return {"type": kind, "value": value}


def _group(rng: random.Random, kind: str, svc: str, idx: int) -> dict[str, Any]:
    group: dict[str, Any] = {
        "timeoutSeconds": rng.choice((60, 120, 160, 300, 600, 1800)),
        "batchSize": (
            _amount("percent", rng.choice((10, 25, 50)))
            if rng.random() < 0.3
            else _amount("number", rng.randint(1, 10))
        ),
        "distributionMethod": rng.choice(("rolling", "batching")),
        "earlyTermination": rng.random() < 0.3,
        "successCriteria": [
            {"numRuns": _amount("percent", rng.choice((80, 90, 100))), "status": "success"}
        ],
        "nodeListType": kind,
    }
    if rng.random() < 0.3:
        group["successCriteria"].append(
            {"numRuns": _amount("number", rng.randint(1, 3)), "status": "failure"}
        )
    if kind == "nodes":
        count = rng.randint(1, 4)
        group["nodeIdentifiers"] = [_uuid(rng) for _ in range(count)]
    elif kind == "filter":
        attrs = rng.sample(ATTRIBUTES, rng.randint(1, 3))
        constraints: dict[str, Any] = {
            "attributes": [
                {"name": name, "operator": op, "value": [v.format(svc=svc) for v in values]}
                for name, op, values in attrs
            ]
        }
        if rng.random() < 0.5:
            constraints["skills"] = [
                {"name": "chef-client", "version": [f">= {rng.randint(17, 18)}.0.0"]}
            ]
        if rng.random() < 0.3:
            constraints["healthStatus"] = {"operator": "=", "value": ["healthy"]}
        group["filter"] = {"constraints": constraints}
    elif kind == "savedFilter":
        group["filterId"] = _uuid(rng)
    else:
        group["listId"] = _uuid(rng)
    del idx
    return group


def _command(rng: random.Random, svc: str, check: bool) -> dict[str, list[str]]:
    fill = {"svc": svc, "port": rng.choice((80, 443, 8080, 9090)), "days": rng.randint(3, 90)}
    command: dict[str, list[str]] = {}
    if check:
        command["linux"] = [rng.choice(LINUX_CHECKS).format(**fill)]
    else:
        command["linux"] = [a.format(**fill) for a in rng.sample(LINUX_ACTIONS, rng.randint(1, 3))]
    if rng.random() < 0.35:
        command["windows"] = [rng.choice(WINDOWS_ACTIONS).format(**fill)]
    if rng.random() < 0.1:
        command["darwin"] = [rng.choice(DARWIN_ACTIONS).format(**fill)]
    return command


def _step(rng: random.Random, svc: str, i: int, previous_output: str | None) -> dict[str, Any]:
    check = previous_output is None or rng.random() < 0.4
    output = f"{svc.upper().replace('-', '_')}_STATE_{i}" if check else None
    step: dict[str, Any] = {
        "name": f"{'check' if check else 'act on'} {svc} (step {i + 1})",
        "interpreter": {
            "skill": {"minVersion": "1.0.0", "maxVersion": rng.choice(("1.9.99", "2.4.0"))},
            "name": "chef-platform/shell-interpreter",
        },
        "command": _command(rng, svc, check),
        "inputs": {},
        "expectedInputs": {},
        "outputFieldRules": {},
        "retryCount": rng.randint(0, 3),
        "failureBehavior": {
            "action": rng.choice(("retryThenFail", "retryThenIgnore")),
            "retryBackoffStrategy": {
                "type": rng.choice(("none", "linear", "exponential")),
                "delaySeconds": rng.randint(1, 30),
                "arguments": [1, 3, 5] if rng.random() < 0.5 else [],
            },
        },
        "limits": {},
        "conditions": [],
    }
    if rng.random() < 0.3:
        step["description"] = f"{'inspect' if check else 'change'} {svc} on the selected nodes"
    if rng.random() < 0.5:
        step["limits"] = {
            "cores": rng.choice((0, 1, 2)),
            "cpu": rng.choice((0.5, 1, 2)),
            "timeoutSeconds": rng.choice((30, 60, 300, 900)),
        }
    if output:
        method = rng.choice(("content", "regex", "jsonPath"))
        step["outputFieldRules"][output] = {
            "source": "stdout",
            "sourceType": "output",
            "extractMethod": method,
            "expression": {"content": "", "regex": "^(\\w+)$", "jsonPath": "$.status"}[method],
            "required": True,
            "sensitive": rng.random() < 0.1,
        }
        if rng.random() < 0.3:
            step["outputFieldRules"][f"{output}_EXIT"] = {
                "sourceType": "exitCode",
                "extractMethod": "content",
                "required": False,
                "sensitive": False,
            }
    if previous_output is not None and not check:
        step["expectedInputs"][previous_output] = {
            "type": "string",
            "sensitive": False,
            "required": True,
            "default": "",
        }
        step["conditions"].append(
            {
                "inputName": previous_output,
                "operator": rng.choice(("eq", "startsWith", "contains", "matches")),
                "value": rng.choice(("stopped", "missing", "absent", "^(stopped|failed)")),
            }
        )
        if rng.random() < 0.3:
            step["conditions"][0]["negate"] = True
        if rng.random() < 0.4:
            step["inputs"]["REASON"] = f"scheduled {svc} maintenance"
    return step


def make_job(rng: random.Random, index: int) -> dict[str, Any]:
    """One valid job template; `index` makes the name unique."""
    svc = rng.choice(SERVICES)
    verb = rng.choice(VERBS)
    name = f"{verb}-{svc}-{index:06d}"
    kinds = rng.sample(("nodes", "filter", "savedFilter", "savedList"), rng.choice((1, 1, 2, 2, 3)))
    recurring = rng.random() < 0.4
    steps: list[dict[str, Any]] = []
    previous: str | None = None
    for i in range(rng.choice((2, 2, 2, 3, 3, 4, 5))):
        step = _step(rng, svc, i, previous)
        rules = [k for k in step["outputFieldRules"] if not k.endswith("_EXIT")]
        previous = rules[0] if rules else previous
        steps.append(step)
    job: dict[str, Any] = {
        "name": name,
        "description": (
            f"{verb.replace('-', ' ')} {svc} across {len(kinds)} group(s); generated for "
            "benchmarks by bench/gen_jobs.py"
        ),
        "scheduleRule": rng.choice(SCHEDULES) if recurring else "immediate",
        "exceptionRules": [],
        "target": {
            "executionType": rng.choice(("sequential", "parallel")),
            "groups": [_group(rng, kind, svc, i) for i, kind in enumerate(kinds)],
        },
        "actions": {"accessMode": "agent", "steps": steps},
        "allowManualExecution": rng.random() < 0.5,
    }
    if recurring and rng.random() < 0.6:
        job["exceptionRules"] = [
            {"rrule": rule, "duration": rng.choice((1, 30, 60, 3600))}
            for rule in rng.sample(EXCEPTIONS, rng.randint(1, 2))
        ]
    return job


# --- writers ---------------------------------------------------------------------------------


def _dump_json(job: dict[str, Any]) -> str:
    """Indented JSON with short flat lists and objects kept on one line, as Chef's samples are."""
    return _json_value(job, 0, 0) + "\n"


def _flat(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return all(not isinstance(v, (dict, list)) or not v for v in items)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{json.dumps(k)}: {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _json_value(value: Any, indent: int, used: int) -> str:
    if not isinstance(value, (dict, list)) or not value:
        return _inline(value)
    if _flat(value):
        one_line = _inline(value)
        if indent + used + len(one_line) <= 80:
            return one_line
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            key = json.dumps(k) + ": "
            lines.append(inner + key + _json_value(v, indent + 2, len(key)))
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [inner + _json_value(v, indent + 2, 0) for v in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


def _yaml_dumper() -> Any:
    try:  # PyYAML's C emitter is ~20x faster than ruamel's; fall back when it is missing
        import yaml

        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

        def dump(job: dict[str, Any]) -> str:
            text: str = yaml.dump(
                job, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100
            )
            return "---\n" + text

        return dump
    except ImportError:
        import io

        from ruamel.yaml import YAML

        ruamel = YAML(typ="safe", pure=True)
        ruamel.default_flow_style = False
        ruamel.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
        ruamel.width = 100

        def dump_ruamel(job: dict[str, Any]) -> str:
            out = io.StringIO()
            ruamel.dump(job, out)
            return "---\n" + out.getvalue()

        return dump_ruamel


def _dump_toml(job: dict[str, Any]) -> str:
    import tomlkit

    return str(tomlkit.dumps(job))


def generate(count: int, outdir: Path, fmt: str = "json", seed: int = 0) -> list[Path]:
    """Write `count` job files under `outdir/jobs.d`; returns their paths in creation order."""
    rng = random.Random(seed)
    root = outdir / "jobs.d"
    dump_yaml = _yaml_dumper() if fmt in ("yaml", "mixed") else None
    written: list[Path] = []
    made: set[Path] = set()
    for index in range(count):
        job = make_job(rng, index)
        kind = rng.choice(FORMATS) if fmt == "mixed" else fmt
        folder = root / TEAMS[index % len(TEAMS)] / ENVS[(index // len(TEAMS)) % len(ENVS)]
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        if kind == "json":
            text = _dump_json(job)
        elif kind == "yaml":
            assert dump_yaml is not None
            text = dump_yaml(job)
        else:
            text = _dump_toml(job)
        path = folder / f"{job['name']}{EXTENSION[kind]}"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="how many job files")
    parser.add_argument("outdir", type=Path, help="files go to OUTDIR/jobs.d/<team>/<env>/")
    parser.add_argument("--format", choices=(*FORMATS, "mixed"), default="json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("N must be >= 0")
    paths = generate(args.count, args.outdir, args.format, args.seed)
    size = sum(p.stat().st_size for p in paths)
    average = size // len(paths) if paths else 0
    print(
        f"wrote {len(paths)} job file(s), {size} bytes (avg {average}), under {args.outdir}/jobs.d"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
