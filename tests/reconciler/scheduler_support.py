"""Jobs for the scheduler and daemon tests: a recurring job over two local nodes, as applied."""

from __future__ import annotations

from typing import Any

from reconciler.model import canonical, spec_hash, validate_document
from reconciler.model.enums import SHELL_INTERPRETER
from reconciler.planning import Desired

MINUTELY = "RRULE:FREQ=MINUTELY"


def job_doc(name: str, schedule: str = MINUTELY, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "scheduleRule": schedule,
        "target": {
            "executionType": "sequential",
            "groups": [
                {
                    "timeoutSeconds": 60,
                    "batchSize": {"type": "number", "value": 1},
                    "distributionMethod": "batching",
                    "nodeListType": "nodes",
                    "nodeIdentifiers": ["web-1", "web-2"],
                }
            ],
        },
        "actions": {
            "steps": [
                {
                    "name": "say",
                    "interpreter": {
                        "name": SHELL_INTERPRETER,
                        "skill": {"minVersion": "1.0.0", "maxVersion": "2.0.0"},
                    },
                    "command": {"linux": ["echo hi"]},
                }
            ]
        },
        **extra,
    }


def desired(doc: dict[str, Any]) -> Desired:
    validated = validate_document(doc)
    assert validated.job is not None, validated
    spec = canonical(validated.job)
    return Desired(doc["name"], f"jobs.d/{doc['name']}.json", spec, spec_hash(spec))
