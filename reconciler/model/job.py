"""pydantic models of the Chef Courier job template (SPEC.md §1), current schema only.

Legacy forms are rewritten by `legacy.upgrade` before these models see a document. Unknown fields
are errors; defaults are the ones Chef's server echoes, so `canonical` can fill them. Pure.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from reconciler.model.enums import (
    ZERO_UUID,
    AccessMode,
    AmountType,
    BackoffType,
    ConditionOperator,
    CriterionStatus,
    DistributionMethod,
    ExecutionType,
    ExtractMethod,
    FailureAction,
    FilterOperator,
    NodeListType,
    SourceType,
)
from reconciler.model.rrule import parse_rrule
from reconciler.model.versions import parse_constraint, parse_version

NonEmptyStr = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
    return value


# --- target -------------------------------------------------------------------------------


class Amount(_Model):
    type: AmountType
    value: int = Field(ge=0)

    @field_validator("value")
    @classmethod
    def _percent_range(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("type") is AmountType.PERCENT and value > 100:
            raise ValueError(f"a percent must be between 0 and 100, not {value}")
        return value


class BatchSize(Amount):
    @field_validator("value")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("a batch size must be at least 1 (a number or a percent in 1..100)")
        return value


class SuccessCriterion(_Model):
    status: CriterionStatus
    numRuns: Amount


class AttributeConstraint(_Model):
    name: NonEmptyStr
    namespace: list[str] | None = None
    operator: FilterOperator
    value: list[str] = Field(min_length=1)

    @field_validator("namespace", mode="before", json_schema_input_type=str | list[str] | None)
    @classmethod
    def _namespace_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("value", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _value_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("value")
    @classmethod
    def _regexes(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("operator") is FilterOperator.MATCHES:
            for v in value:
                _check_regex(v)
        return value


class SkillConstraint(_Model):
    name: NonEmptyStr
    version: list[str] = []

    @field_validator("version", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _version_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("version")
    @classmethod
    def _constraints(cls, value: list[str]) -> list[str]:
        for c in value:
            parse_constraint(c)
        return value


class ValueConstraint(_Model):
    operator: FilterOperator
    value: list[str] = Field(min_length=1)


class Constraints(_Model):
    attributes: list[AttributeConstraint] = []
    skills: list[SkillConstraint] = []
    enrollmentLevel: ValueConstraint | None = None
    healthStatus: ValueConstraint | None = None


class NodeFilter(_Model):
    constraints: Constraints

    @model_validator(mode="after")
    def _not_empty(self) -> NodeFilter:
        c = self.constraints
        if not (c.attributes or c.skills or c.enrollmentLevel or c.healthStatus):
            raise ValueError("a filter needs at least one constraint (it would match every node)")
        return self


class Group(_Model):
    timeoutSeconds: int = Field(gt=0)
    batchSize: BatchSize
    distributionMethod: DistributionMethod
    earlyTermination: bool = False
    successCriteria: list[SuccessCriterion] = []
    nodeListType: NodeListType
    nodeIdentifiers: list[NonEmptyStr] | None = Field(default=None, validate_default=True)
    filter: NodeFilter | None = Field(default=None, validate_default=True)
    filterId: str = Field(default=ZERO_UUID, validate_default=True)
    listId: str = Field(default=ZERO_UUID, validate_default=True)

    @field_validator("nodeIdentifiers", "filter", "filterId", "listId")
    @classmethod
    def _selected_is_present(cls, value: Any, info: ValidationInfo) -> Any:
        list_type = info.data.get("nodeListType")
        wanted = {
            NodeListType.NODES: "nodeIdentifiers",
            NodeListType.FILTER: "filter",
            NodeListType.SAVED_FILTER: "filterId",
            NodeListType.SAVED_LIST: "listId",
        }.get(list_type)  # type: ignore[arg-type]
        if wanted == info.field_name and value in (None, [], ZERO_UUID, ""):
            raise ValueError(
                f"is required and must not be empty when nodeListType is {str(list_type)!r}"
            )
        return value


class Target(_Model):
    executionType: ExecutionType
    groups: list[Group] = Field(min_length=1)


# --- actions --------------------------------------------------------------------------------


class Skill(_Model):
    minVersion: str = ""
    maxVersion: str = ""

    @field_validator("minVersion", "maxVersion")
    @classmethod
    def _semver(cls, value: str) -> str:
        if value:
            parse_version(value)
        return value


class Interpreter(_Model):
    name: NonEmptyStr
    skill: Skill = Skill()


class ShellCommand(_Model):
    """shell-interpreter payload: command lines per OS."""

    linux: list[str] | None = None
    windows: list[str] | None = None
    darwin: list[str] | None = None

    @model_serializer(mode="wrap")
    def _only_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Chef echoes only the operating systems a command has; `null` lists are noise in diffs.
        return {k: v for k, v in handler(self).items() if v is not None}

    @model_validator(mode="after")
    def _some_os(self) -> ShellCommand:
        if not (self.linux or self.windows or self.darwin):
            raise ValueError("needs command lines for at least one of linux, windows, darwin")
        return self


class ExecCommand(_Model):
    """Payload of the other interpreters: an operation and its arguments."""

    exec: NonEmptyStr
    args: dict[str, Any] = {}


def _command_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "exec" if "exec" in value or "args" in value else "shell"
    if isinstance(value, ShellCommand):
        return "shell"
    return "exec"


Command = Annotated[
    Annotated[ShellCommand, Tag("shell")] | Annotated[ExecCommand, Tag("exec")],
    Discriminator(_command_kind),
]


class ExpectedInput(_Model):
    type: str = "string"
    default: Any = None
    required: bool = False
    sensitive: bool = False


class OutputFieldRule(_Model):
    sourceType: SourceType
    source: str = ""
    extractMethod: ExtractMethod
    expression: str = Field(default="", validate_default=True)
    required: bool = False
    sensitive: bool = False

    @field_validator("expression", mode="after")
    @classmethod
    def _expression(cls, value: str, info: ValidationInfo) -> str:
        method = info.data.get("extractMethod")
        if method is ExtractMethod.REGEX:
            if not value:
                raise ValueError("extractMethod regex needs an expression")
            _check_regex(value)
        if method is ExtractMethod.JSON_PATH and not value.startswith("$"):
            raise ValueError(f"a jsonPath expression starts with '$', not {value!r}")
        return value


class BackoffStrategy(_Model):
    type: BackoffType = BackoffType.NONE
    delaySeconds: int = Field(default=0, ge=0)
    arguments: list[Any] = []


class FailureBehavior(_Model):
    action: FailureAction = FailureAction.RETRY_THEN_FAIL
    retryBackoffStrategy: BackoffStrategy = BackoffStrategy()


class Limits(_Model):
    cores: int = Field(default=0, ge=0)
    cpu: float = Field(default=1, ge=0)
    timeoutSeconds: int = Field(default=0, ge=0)


class Condition(_Model):
    inputName: NonEmptyStr
    operator: ConditionOperator
    value: str
    negate: bool = False

    @field_validator("value")
    @classmethod
    def _regex(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("operator") is ConditionOperator.MATCHES:
            _check_regex(value)
        return value


class Step(_Model):
    name: NonEmptyStr
    description: str = ""
    interpreter: Interpreter
    command: Command
    inputs: dict[str, Any] = {}
    expectedInputs: dict[str, ExpectedInput] = {}
    outputFieldRules: dict[str, OutputFieldRule] = {}
    retryCount: int = Field(default=0, ge=0, le=100)
    failureBehavior: FailureBehavior = FailureBehavior()
    limits: Limits = Limits()
    conditions: list[Condition] = []


class Actions(_Model):
    accessMode: AccessMode = AccessMode.AGENT
    steps: list[Step] = Field(min_length=1)


class ExceptionRule(_Model):
    rrule: str
    duration: int = Field(ge=0)

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str) -> str:
        parse_rrule(value)
        return value


class JobTemplate(_Model):
    """A whole job template as written in `jobs.d/` or sent to `scheduler jobs add-job`."""

    name: NonEmptyStr
    description: str = ""
    scheduleRule: str
    exceptionRules: list[ExceptionRule] = []
    target: Target
    actions: Actions
    allowManualExecution: bool = False

    @field_validator("scheduleRule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if value.strip().lower() == "immediate":
            return "immediate"
        parse_rrule(value)
        return value.strip()

    @property
    def immediate(self) -> bool:
        return self.scheduleRule == "immediate"
