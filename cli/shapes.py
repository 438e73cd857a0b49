"""Chef Courier's JSON shapes (seeds/): `{"item": ...}`, `{"items": [...], "pagination": ...}`.

camelCase keys, RFC 3339 UTC times with a `Z`, and Chef's "no time" value `0001-01-01T00:00:00Z`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from reconciler.model.enums import ZERO_UUID
from reconciler.ports import StepResult, StoredInstance, StoredJob, StoredRun

NO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(moment: datetime | None) -> str:
    if moment is None:
        return NO_TIME
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, flag: str) -> datetime:
    from reconciler.errors import UsageError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"{flag}: {text!r} is not an RFC 3339 time like 2024-03-31T19:59:20Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def job_item(job: StoredJob) -> dict[str, Any]:
    spec = job.spec
    return {
        "actions": spec["actions"],
        "createdAt": rfc3339(job.created_at),
        "description": spec.get("description", ""),
        "exceptionReasons": [],
        "exceptionRules": spec.get("exceptionRules", []),
        "executionCount": job.execution_count,
        "id": job.id,
        "modifiedAt": rfc3339(job.modified_at),
        "name": job.name,
        "nextExecutionTime": rfc3339(job.next_execution_time),
        "scheduleRule": spec["scheduleRule"],
        "status": str(job.status),
        "target": spec["target"],
    }


def instance_item(instance: StoredInstance, spec: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "actionSpec": (spec or {}).get("actions", {}),
        "createdAt": rfc3339(instance.created_at),
        "id": instance.id,
        "jobId": instance.job_id,
        "lastUpdatedBy": ZERO_UUID,
        "scheduledFor": rfc3339(instance.scheduled_for),
        "status": str(instance.status),
        "targetSpec": (spec or {}).get("target", {}),
        "updatedAt": rfc3339(instance.updated_at),
    }


def page_of(items: list[Any], total: int, page: int, size: int) -> dict[str, Any]:
    return {
        "items": items,
        "pagination": {
            "itemsPerPage": size,
            "nextLink": "",
            "page": page,
            "pageItemCount": len(items),
            "previousLink": "",
            "startIndex": (page - 1) * size + 1 if items else 0,
            "totalItems": total,
            "totalPages": math.ceil(total / size) if size else 0,
        },
    }


def run_item(run: StoredRun) -> dict[str, Any]:
    return {
        "groupNumber": run.group_number,
        "lastUpdateTime": rfc3339(run.last_update_time),
        "nodeId": run.node_id,
        "receivedTime": rfc3339(run.received_time),
        "runId": run.id,
        "status": str(run.status),
    }


def step_item(step: StepResult) -> dict[str, Any]:
    return {
        "inputs": step.inputs,
        "interpreterPath": step.interpreter_path,
        "interpreterVersion": step.interpreter_version,
        "numAttempts": step.num_attempts,
        "outputs": step.outputs,
        "reason": step.reason,
        "status": str(step.status),
        "stepNumber": step.step_number,
    }
