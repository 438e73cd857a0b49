"""Enumerations of the job template (SPEC.md §1) and of stored statuses (DESIGN.md §4)."""

from __future__ import annotations

from enum import StrEnum


class ExecutionType(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class DistributionMethod(StrEnum):
    ROLLING = "rolling"
    BATCHING = "batching"


class AmountType(StrEnum):
    NUMBER = "number"
    PERCENT = "percent"


class NodeListType(StrEnum):
    NODES = "nodes"
    FILTER = "filter"
    SAVED_FILTER = "savedFilter"
    SAVED_LIST = "savedList"


class CriterionStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class FilterOperator(StrEnum):
    EQ = "="
    NE = "!="
    MATCHES = "MATCHES"
    CONTAINS = "CONTAINS"


class AccessMode(StrEnum):
    AGENT = "agent"
    AGENTLESS = "agentless"


class FailureAction(StrEnum):
    RETRY_THEN_FAIL = "retryThenFail"
    RETRY_THEN_IGNORE = "retryThenIgnore"


class BackoffType(StrEnum):
    NONE = "none"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    POLYNOMIAL = "polynomial"


class ConditionOperator(StrEnum):
    EQ = "eq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    MATCHES = "matches"
    STARTS_WITH = "startsWith"
    ENDS_WITH = "endsWith"
    CONTAINS = "contains"


class SourceType(StrEnum):
    ARTIFACT = "artifact"
    EXIT_CODE = "exitCode"
    FILE = "file"
    OUTPUT = "output"


class ExtractMethod(StrEnum):
    REGEX = "regex"
    JSON_PATH = "jsonPath"
    CONTENT = "content"


class JobStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELED = "canceled"


class InstanceStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELED = "canceled"


class StepStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    SKIPPED = "skipped"
    CANCELED = "canceled"


SHELL_INTERPRETER = "chef-platform/shell-interpreter"
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
