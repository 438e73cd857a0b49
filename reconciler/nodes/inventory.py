"""The inventory: nodes, saved lists and saved filters of `nodes.yaml` (DESIGN.md §7). Pure.

`loading` reads the file; `inventory_from_document` validates the parsed document and merges this
machine's gathered attributes and the built-in skills under what each local node declares. The
result, an `Inventory`, is what `targeting` resolves groups against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.errors import CourierError
from reconciler.model.job import Constraints
from reconciler.model.legacy import Loc
from reconciler.model.validating import Finding, format_loc
from reconciler.model.versions import parse_version

IMPLICIT_NODE_ID = "local"
"""The node that stands for this machine when there is no `nodes.yaml`."""

NonEmptyStr = Annotated[str, Field(min_length=1)]
Scalar = str | int | float | bool
AttributeValue = Scalar | list[Scalar]


class Transport(StrEnum):
    LOCAL = "local"
    AGENT = "agent"


def _text(value: Any) -> Any:
    # YAML turns `tier: 1` and `shell-interpreter: 1.4` into numbers; tags and versions are text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeEntry(_Model):
    id: NonEmptyStr
    name: str = ""
    transport: Transport = Transport.LOCAL
    attributes: dict[str, AttributeValue] = {}
    tags: dict[str, str] = {}
    skills: dict[str, str] = {}

    @field_validator("tags", "skills", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _text(v) for k, v in value.items()}
        return value

    @field_validator("skills")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        for name, version in value.items():
            try:
                parse_version(version)
            except ValueError as exc:
                raise ValueError(f"skill {name!r}: {exc}") from exc
        return value


class SavedList(_Model):
    id: NonEmptyStr
    name: str = ""
    nodeIds: list[NonEmptyStr] = []


class SavedFilter(_Model):
    id: NonEmptyStr
    name: str = ""
    constraints: Constraints


class InventoryDocument(_Model):
    """The whole of `nodes.yaml`, structurally valid (cross-references are checked separately)."""

    nodes: list[NodeEntry] = []
    lists: list[SavedList] = []
    filters: list[SavedFilter] = []


@dataclass(frozen=True, slots=True)
class Node:
    """One node as targeting sees it: declared values over gathered ones."""

    id: str
    name: str
    transport: Transport
    attributes: Mapping[str, object]
    tags: Mapping[str, str]
    skills: Mapping[str, str]
    enrollment_level: str = "enrolled"
    health_status: str = "healthy"


@dataclass(frozen=True, slots=True)
class Inventory:
    """All known nodes in declaration order, saved lists (id -> node ids) and saved filters."""

    nodes: tuple[Node, ...]
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    filters: Mapping[str, Constraints] = field(default_factory=dict)
    _by_id: Mapping[str, Node] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {n.id: n for n in self.nodes})

    def node(self, node_id: str) -> Node | None:
        return self._by_id.get(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id


class InventoryError(CourierError):
    """`nodes.yaml` has problems; each finding has a loc that `loading` can turn into a line."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = tuple(findings)
        details = "; ".join(
            f"{format_loc(f.loc)}: {f.message}" if f.loc else f.message for f in self.findings
        )
        super().__init__(f"{len(self.findings)} problem(s) in the inventory: {details}")


def validate_inventory(doc: Any) -> tuple[InventoryDocument | None, list[Finding]]:
    """Validate a parsed `nodes.yaml`: structure first, then unique ids and list references."""
    if not isinstance(doc, dict):
        kind = "an empty file" if doc is None else f"a {type(doc).__name__}"
        return None, [
            Finding((), f"an inventory is a mapping with nodes, lists, filters; not {kind}")
        ]
    try:
        parsed = InventoryDocument.model_validate(doc)
    except ValidationError as exc:
        return None, [_finding(err) for err in exc.errors(include_url=False)]
    findings = [
        *_duplicates("nodes", [n.id for n in parsed.nodes], "node"),
        *_duplicates("lists", [s.id for s in parsed.lists], "saved list"),
        *_duplicates("filters", [f.id for f in parsed.filters], "saved filter"),
    ]
    known = {n.id for n in parsed.nodes}
    for i, saved in enumerate(parsed.lists):
        for j, node_id in enumerate(saved.nodeIds):
            if node_id not in known:
                findings.append(Finding(("lists", i, "nodeIds", j), f"unknown node id {node_id!r}"))
    return (None if findings else parsed), findings


def inventory_from_document(
    doc: Any, gathered: Mapping[str, object], builtin_skills: Mapping[str, str]
) -> Inventory:
    """Build the inventory from a parsed `nodes.yaml`, or the implicit `local` node for None.

    Local nodes get `gathered` attributes and `builtin_skills` under the ones they declare (the
    declared value wins). Agent nodes run elsewhere, so this machine's facts are not theirs: they
    carry only what they declare until their runner enrolls them. Raises `InventoryError`.
    """
    if doc is None:
        return Inventory(
            nodes=(
                Node(
                    id=IMPLICIT_NODE_ID,
                    name=IMPLICIT_NODE_ID,
                    transport=Transport.LOCAL,
                    attributes=MappingProxyType(dict(gathered)),
                    tags=MappingProxyType({}),
                    skills=MappingProxyType(dict(builtin_skills)),
                ),
            )
        )
    parsed, findings = validate_inventory(doc)
    if parsed is None:
        raise InventoryError(findings)
    return Inventory(
        nodes=tuple(_node(entry, gathered, builtin_skills) for entry in parsed.nodes),
        lists=MappingProxyType({s.id: _unique(s.nodeIds) for s in parsed.lists}),
        filters=MappingProxyType({f.id: f.constraints for f in parsed.filters}),
    )


def _node(
    entry: NodeEntry, gathered: Mapping[str, object], builtin_skills: Mapping[str, str]
) -> Node:
    local = entry.transport is Transport.LOCAL
    declared = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.attributes.items()}
    attributes = {**gathered, **declared} if local else declared
    skills = {**builtin_skills, **entry.skills} if local else dict(entry.skills)
    return Node(
        id=entry.id,
        name=entry.name or entry.id,
        transport=entry.transport,
        attributes=MappingProxyType(attributes),
        tags=MappingProxyType(dict(entry.tags)),
        skills=MappingProxyType(skills),
    )


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _duplicates(section: str, ids: list[str], what: str) -> list[Finding]:
    first: dict[str, int] = {}
    findings = []
    for i, item in enumerate(ids):
        if item in first:
            message = f"duplicate {what} id {item!r} (first at {section}[{first[item]}])"
            findings.append(Finding((section, i, "id"), message))
        else:
            first[item] = i
    return findings


def _finding(err: Any) -> Finding:
    loc: Loc = tuple(err["loc"])
    msg: str = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return Finding(loc, msg)
