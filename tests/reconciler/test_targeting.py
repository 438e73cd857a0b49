from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from reconciler.errors import CourierError
from reconciler.model.enums import RunStatus
from reconciler.model.job import BatchSize, Constraints, Group, SuccessCriterion
from reconciler.nodes.inventory import Inventory, Node, Transport, inventory_from_document
from reconciler.targeting import (
    CriteriaState,
    Resolution,
    TargetingError,
    batches,
    node_matches,
    resolve_group,
    select,
    success_state,
    threshold,
    window,
)

MET, FAILED, PENDING = CriteriaState.MET, CriteriaState.FAILED, CriteriaState.PENDING

FLEET: dict[str, Any] = {
    "nodes": [
        {
            "id": "web-1",
            "attributes": {
                "kernel_name": "Linux",
                "primary_ip": "10.0.0.11",
                "roles": ["web", "cache"],
                "gpu": True,
            },
            "tags": {"role": "web", "env": "prod"},
            "skills": {"shell-interpreter": "1.4.0"},
        },
        {
            "id": "web-2",
            "attributes": {"kernel_name": "Linux", "primary_ip": "10.0.0.12"},
            "tags": {"role": "web", "env": "staging"},
            "skills": {"shell-interpreter": "1.2.0"},
        },
        {
            "id": "db-1",
            "attributes": {"kernel_name": "Linux", "primary_ip": "172.31.0.5", "role": "primary"},
            "tags": {"role": "db"},
            "skills": {"shell-interpreter": "2.0.0", "custom": "0.1.0"},
        },
        {
            "id": "win-1",
            "transport": "agent",
            "attributes": {"kernel_name": "Windows"},
            "tags": {"role": "web"},
        },
        {"id": "bare", "transport": "agent"},
    ],
    "lists": [{"id": "canaries", "nodeIds": ["db-1", "web-1"]}],
    "filters": [
        {
            "id": "webs",
            "constraints": {
                "attributes": [
                    {"name": "role", "namespace": "tags", "operator": "=", "value": ["web"]}
                ]
            },
        }
    ],
}
INVENTORY = inventory_from_document(FLEET, {"hostname": "vm"}, {"courier-runner": "1.0.0"})


def attr(name: str, operator: str, *values: str, namespace: Any = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "operator": operator, "value": list(values)}
    if namespace is not None:
        c["namespace"] = namespace
    return c


def describe(c: dict[str, Any]) -> str:
    ns = c.get("namespace")
    where = f"@{ns if isinstance(ns, str) else '+'.join(ns)}" if ns else ""
    return f"{c['name']}{where} {c['operator']} {'|'.join(c['value'])}"


def matching(constraints: dict[str, Any]) -> list[str]:
    return list(select(INVENTORY.nodes, Constraints.model_validate(constraints)))


def group(node_list_type: str, **fields: Any) -> Group:
    return Group.model_validate(
        {
            "timeoutSeconds": 60,
            "batchSize": {"type": "number", "value": 1},
            "distributionMethod": "batching",
            "nodeListType": node_list_type,
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        # =
        (attr("kernel_name", "=", "Linux", namespace="agent"), ["web-1", "web-2", "db-1"]),
        (attr("primary_ip", "=", "10.0.0.11", "172.31.0.5"), ["web-1", "db-1"]),
        (attr("gpu", "=", "true"), ["web-1"]),
        (attr("roles", "=", "cache"), ["web-1"]),
        (attr("kernel_name", "=", "linux"), []),
        (attr("hostname", "=", "vm"), ["web-1", "web-2", "db-1"]),
        # !=: a node lacking the attribute matches neither = nor !=
        (attr("kernel_name", "!=", "Linux"), ["win-1"]),
        (attr("kernel_name", "!=", "Linux", "Windows"), []),
        (attr("env", "!=", "prod", namespace="tags"), ["web-2"]),
        (attr("roles", "!=", "db"), ["web-1"]),
        # MATCHES
        (attr("primary_ip", "MATCHES", r"^172\.31.*"), ["db-1"]),
        (attr("primary_ip", "MATCHES", r"^10\.0\.0\.1[12]$", "^192"), ["web-1", "web-2"]),
        (attr("kernel_name", "MATCHES", "dow"), ["win-1"]),
        # CONTAINS: substring of a scalar, membership in a list
        (attr("kernel_name", "CONTAINS", "ind"), ["win-1"]),
        (attr("roles", "CONTAINS", "cache"), ["web-1"]),
        (attr("roles", "CONTAINS", "cach"), []),
        (attr("env", "CONTAINS", "stag", "nope", namespace="tags"), ["web-2"]),
        # namespaces: tags only in tags, the others only in attributes, none in both
        (attr("role", "=", "web", namespace="tags"), ["web-1", "web-2", "win-1"]),
        (attr("role", "=", "web", namespace=["tags"]), ["web-1", "web-2", "win-1"]),
        (attr("role", "=", "primary", namespace="tags"), []),
        (attr("role", "=", "primary", namespace="gohai"), ["db-1"]),
        (attr("role", "=", "db", namespace="agent"), []),
        (attr("role", "=", "db"), ["db-1"]),
        (attr("role", "=", "primary"), ["db-1"]),
        (attr("role", "!=", "db", namespace=["agent", "tags"]), ["web-1", "web-2", "win-1"]),
        # missing attribute
        (attr("rack", "=", "r1"), []),
        (attr("rack", "!=", "r1"), []),
        (attr("rack", "MATCHES", ".*"), []),
        (attr("rack", "CONTAINS", ""), []),
    ],
    ids=lambda v: "->" + ",".join(v) if isinstance(v, list) else describe(v),
)
def test_attribute_operators(constraint: dict[str, Any], expected: list[str]) -> None:
    assert matching({"attributes": [constraint]}) == expected


def test_attribute_constraints_are_anded() -> None:
    linux = attr("kernel_name", "=", "Linux")
    web = attr("role", "=", "web", namespace="tags")
    prod = attr("env", "=", "prod", namespace="tags")
    assert matching({"attributes": [linux, web]}) == ["web-1", "web-2"]
    assert matching({"attributes": [linux, web, prod]}) == ["web-1"]
    assert matching({"attributes": [linux, attr("kernel_name", "=", "Windows")]}) == []


@pytest.mark.parametrize(
    ("skill", "expected"),
    [
        ({"name": "shell-interpreter", "version": [">= 1.2.0"]}, ["web-1", "web-2", "db-1"]),
        ({"name": "shell-interpreter", "version": ["< 2.0.0"]}, ["web-1", "web-2"]),
        ({"name": "shell-interpreter", "version": ["> 1.2.0", "< 2.0.0"]}, ["web-1"]),
        ({"name": "shell-interpreter", "version": ["= 1.3.0"]}, []),
        ({"name": "custom", "version": ["= 0.1.0"]}, ["db-1"]),
        ({"name": "custom", "version": "= 0.2.0"}, []),
        ({"name": "custom"}, ["db-1"]),
        ({"name": "missing", "version": [">= 0.0.0"]}, []),
        # built-in skills are merged into local nodes only
        ({"name": "courier-runner", "version": ["<= 1.0.66"]}, ["web-1", "web-2", "db-1"]),
    ],
)
def test_skill_constraints(skill: dict[str, Any], expected: list[str]) -> None:
    assert matching({"skills": [skill]}) == expected


def test_skills_and_attributes_combine() -> None:
    constraints = {
        "attributes": [attr("role", "=", "web", namespace="tags")],
        "skills": [{"name": "shell-interpreter", "version": [">= 1.3.0"]}],
    }
    assert matching(constraints) == ["web-1"]


def node(enrollment: str, health: str) -> Node:
    empty: MappingProxyType[str, Any] = MappingProxyType({})
    return Node("n", "n", Transport.AGENT, empty, empty, empty, enrollment, health)


@pytest.mark.parametrize(
    ("constraints", "enrollment", "health", "expected"),
    [
        ({"enrollmentLevel": {"operator": "=", "value": ["enrolled"]}}, "enrolled", "ok", True),
        ({"enrollmentLevel": {"operator": "!=", "value": ["enrolled"]}}, "enrolled", "ok", False),
        ({"enrollmentLevel": {"operator": "CONTAINS", "value": ["roll"]}}, "enrolled", "ok", True),
        ({"healthStatus": {"operator": "MATCHES", "value": ["^heal"]}}, "x", "healthy", True),
        ({"healthStatus": {"operator": "=", "value": ["healthy", "ok"]}}, "x", "degraded", False),
        ({"healthStatus": {"operator": "!=", "value": ["healthy"]}}, "x", "degraded", True),
    ],
)
def test_enrollment_and_health(
    constraints: dict[str, Any], enrollment: str, health: str, expected: bool
) -> None:
    assert (
        node_matches(node(enrollment, health), Constraints.model_validate(constraints)) is expected
    )


def test_declared_nodes_are_enrolled_and_healthy() -> None:
    healthy = {"healthStatus": {"operator": "=", "value": ["healthy"]}}
    enrolled = {"enrollmentLevel": {"operator": "=", "value": ["enrolled"]}}
    everyone = [n.id for n in INVENTORY.nodes]
    assert matching(healthy) == everyone
    assert matching(enrolled) == everyone


@pytest.mark.parametrize(
    ("g", "expected"),
    [
        pytest.param(
            group("nodes", nodeIdentifiers=["db-1", "ghost", "web-1", "db-1"]),
            Resolution(("db-1", "ghost", "web-1"), ("ghost",)),
            id="nodes-keep-order-report-unknown",
        ),
        pytest.param(
            group(
                "filter",
                filter={"constraints": {"attributes": [attr("kernel_name", "=", "Linux")]}},
            ),
            Resolution(("web-1", "web-2", "db-1")),
            id="filter",
        ),
        pytest.param(
            group("savedFilter", filterId="webs"),
            Resolution(("web-1", "web-2", "win-1")),
            id="saved-filter",
        ),
        pytest.param(
            group("savedList", listId="canaries"),
            Resolution(("db-1", "web-1")),
            id="saved-list",
        ),
    ],
)
def test_resolve_group(g: Group, expected: Resolution) -> None:
    assert resolve_group(g, INVENTORY) == expected


@pytest.mark.parametrize(
    ("g", "message"),
    [
        (group("savedFilter", filterId="nope"), "saved filter 'nope' is not in the inventory"),
        (group("savedList", listId="nada"), "saved list 'nada' is not in the inventory"),
    ],
)
def test_unknown_saved_ids(g: Group, message: str) -> None:
    with pytest.raises(TargetingError, match=message) as caught:
        resolve_group(g, INVENTORY)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, CourierError)


def test_the_implicit_local_node_is_targetable() -> None:
    inventory = inventory_from_document(None, {"kernel_name": "Linux"}, {})
    g = group("filter", filter={"constraints": {"attributes": [attr("kernel_name", "=", "Linux")]}})
    assert resolve_group(g, inventory) == Resolution(("local",))
    assert resolve_group(group("nodes", nodeIdentifiers=["local"]), inventory).unknown == ()
    assert resolve_group(g, Inventory(())) == Resolution(())


def size(kind: str, value: int) -> BatchSize:
    return BatchSize.model_validate({"type": kind, "value": value})


def ids(n: int) -> list[str]:
    return [f"n{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("n", "kind", "value", "expected"),
    [
        (4, "percent", 50, [2, 2]),
        (3, "percent", 50, [2, 1]),
        (1, "percent", 10, [1]),
        (10, "percent", 10, [1] * 10),
        (7, "percent", 100, [7]),
        (5, "number", 2, [2, 2, 1]),
        (3, "number", 10, [3]),
        (4, "number", 1, [1, 1, 1, 1]),
        (0, "number", 2, []),
        (0, "percent", 50, []),
    ],
)
def test_batches(n: int, kind: str, value: int, expected: list[int]) -> None:
    cut = batches(ids(n), size(kind, value))
    assert [len(b) for b in cut] == expected
    assert [i for b in cut for i in b] == ids(n)


@pytest.mark.parametrize(
    ("total", "kind", "value", "expected"),
    [
        (4, "percent", 50, 2),
        (3, "percent", 50, 2),
        (1, "percent", 10, 1),
        (1000, "percent", 7, 70),
        (3, "number", 10, 3),
        (5, "number", 2, 2),
        (0, "percent", 50, 1),
    ],
)
def test_window(total: int, kind: str, value: int, expected: int) -> None:
    assert window(size(kind, value), total) == expected


def crit(status: str, kind: str, value: int) -> SuccessCriterion:
    return SuccessCriterion.model_validate(
        {"status": status, "numRuns": {"type": kind, "value": value}}
    )


@pytest.mark.parametrize(
    ("criterion", "total", "expected"),
    [
        (crit("success", "number", 3), 10, 3),
        (crit("success", "percent", 50), 3, 2),
        (crit("success", "percent", 100), 7, 7),
        (crit("failure", "percent", 50), 3, 1),
        (crit("failure", "percent", 10), 5, 0),
        (crit("failure", "number", 2), 3, 2),
    ],
)
def test_threshold(criterion: SuccessCriterion, total: int, expected: int) -> None:
    assert threshold(criterion, total) == expected


S, F, T, C = RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.TIMEOUT, RunStatus.CANCELED
SUCCESS_3 = [crit("success", "number", 3)]
ALL_SUCCEED = [crit("success", "percent", 100)]
HALF_SUCCEED = [crit("success", "percent", 50)]
ONE_FAILURE_OK = [crit("failure", "number", 1)]
HALF_MAY_FAIL = [crit("failure", "percent", 50)]
BOTH = [crit("success", "number", 2), crit("failure", "number", 1)]


@pytest.mark.parametrize(
    ("criteria", "counts", "total", "expected"),
    [
        pytest.param(SUCCESS_3, {S: 3}, 4, MET, id="success-met-early"),
        pytest.param(SUCCESS_3, {S: 2}, 4, PENDING, id="success-pending"),
        pytest.param(SUCCESS_3, {S: 1, F: 1}, 4, PENDING, id="success-still-possible"),
        pytest.param(SUCCESS_3, {S: 1, F: 2}, 4, FAILED, id="success-impossible-early"),
        pytest.param(ALL_SUCCEED, {S: 3}, 4, PENDING, id="all-pending"),
        pytest.param(ALL_SUCCEED, {F: 1}, 4, FAILED, id="all-failed-on-first-failure"),
        pytest.param(ALL_SUCCEED, {S: 4}, 4, MET, id="all-met"),
        pytest.param(HALF_SUCCEED, {S: 1, F: 1}, 3, PENDING, id="half-of-3-needs-2"),
        pytest.param(HALF_SUCCEED, {S: 2}, 3, MET, id="half-of-3-met"),
        pytest.param(HALF_SUCCEED, {F: 2}, 3, FAILED, id="half-of-3-failed"),
        pytest.param(ONE_FAILURE_OK, {S: 2}, 4, PENDING, id="failure-not-yet-safe"),
        pytest.param(ONE_FAILURE_OK, {S: 3}, 4, MET, id="failure-safe-with-one-left"),
        pytest.param(ONE_FAILURE_OK, {S: 3, F: 1}, 4, MET, id="failure-at-limit"),
        pytest.param(ONE_FAILURE_OK, {F: 2}, 4, FAILED, id="failure-over-limit-early"),
        pytest.param(ONE_FAILURE_OK, {T: 1, C: 1}, 4, FAILED, id="timeout-canceled-count"),
        pytest.param(HALF_MAY_FAIL, {S: 1, F: 1}, 3, PENDING, id="half-of-3-tolerates-1"),
        pytest.param(HALF_MAY_FAIL, {S: 2, F: 1}, 3, MET, id="half-of-3-met"),
        pytest.param(HALF_MAY_FAIL, {F: 2}, 3, FAILED, id="half-of-3-broken"),
        pytest.param(ALL_SUCCEED, {S: 3, T: 1}, 4, FAILED, id="timeout-is-not-success"),
        pytest.param(BOTH, {S: 2}, 4, PENDING, id="both-failure-unsure"),
        pytest.param(BOTH, {S: 2, F: 1}, 4, PENDING, id="both-one-left-could-fail"),
        pytest.param(BOTH, {S: 3, F: 1}, 4, MET, id="both-met"),
        pytest.param(BOTH, {S: 1, F: 2}, 4, FAILED, id="both-failure-breaks"),
        pytest.param([], {S: 3}, 4, PENDING, id="no-criteria-running"),
        # no criteria means every run must succeed (a failed run is not a success by default)
        pytest.param([], {S: 2, F: 2}, 4, FAILED, id="no-criteria-a-run-failed"),
        pytest.param([], {S: 4}, 4, MET, id="no-criteria-all-succeeded"),
        pytest.param([], {}, 0, MET, id="no-criteria-no-runs"),
        pytest.param([crit("success", "percent", 0)], {}, 4, MET, id="zero-threshold"),
        pytest.param(SUCCESS_3, {}, 0, FAILED, id="empty-group-cannot-succeed"),
    ],
)
def test_success_state(
    criteria: list[SuccessCriterion], counts: dict[RunStatus, int], total: int, expected: str
) -> None:
    finished = sum(counts.values())
    assert success_state(criteria, counts, total, finished) == expected


def test_success_state_ignores_counts_of_runs_still_going() -> None:
    counts = {"success": 1, "running": 2, "pending": 1}
    assert success_state(SUCCESS_3, counts, 4, finished=1) is PENDING
    assert success_state(SUCCESS_3, {"success": 3, "running": 1}, 4, finished=3) is MET
