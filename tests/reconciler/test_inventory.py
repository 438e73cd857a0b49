from __future__ import annotations

import sys
from typing import Any

import pytest

from reconciler.nodes.gather import KEYS, gather
from reconciler.nodes.inventory import (
    IMPLICIT_NODE_ID,
    InventoryError,
    Transport,
    inventory_from_document,
    validate_inventory,
)

GATHERED = {"kernel_name": "Linux", "platform": "debian", "hostname": "vm"}
BUILTIN = {"shell-interpreter": "1.4.0", "courier-runner": "0.1.0"}


def build(doc: Any) -> Any:
    return inventory_from_document(doc, GATHERED, BUILTIN)


def messages(doc: Any) -> list[tuple[tuple[str | int, ...], str]]:
    parsed, findings = validate_inventory(doc)
    assert parsed is None
    return [(f.loc, f.message) for f in findings]


def test_no_file_means_the_implicit_local_node() -> None:
    inventory = build(None)
    (node,) = inventory.nodes
    assert node.id == IMPLICIT_NODE_ID
    assert node.transport is Transport.LOCAL
    assert dict(node.attributes) == GATHERED
    assert dict(node.skills) == BUILTIN
    assert (node.enrollment_level, node.health_status) == ("enrolled", "healthy")
    assert inventory.lists == {}
    assert inventory.filters == {}
    assert IMPLICIT_NODE_ID in inventory


def test_declared_values_win_over_gathered_and_builtin() -> None:
    inventory = build(
        {
            "nodes": [
                {
                    "id": "web-1",
                    "attributes": {"platform": "ubuntu", "roles": ["a", "b"], "gpu": True},
                    "tags": {"role": "web", "tier": 1},
                    "skills": {"shell-interpreter": 2.1, "custom": "0.3.0"},
                }
            ]
        }
    )
    node = inventory.node("web-1")
    assert node is not None
    assert node.name == "web-1"
    assert node.attributes["platform"] == "ubuntu"
    assert node.attributes["kernel_name"] == "Linux"
    assert node.attributes["roles"] == ("a", "b")
    assert node.attributes["gpu"] is True
    assert dict(node.tags) == {"role": "web", "tier": "1"}
    assert dict(node.skills) == {
        "shell-interpreter": "2.1",
        "courier-runner": "0.1.0",
        "custom": "0.3.0",
    }


def test_agent_nodes_do_not_get_this_machines_facts() -> None:
    inventory = build({"nodes": [{"id": "far", "transport": "agent", "attributes": {"a": 1}}]})
    node = inventory.nodes[0]
    assert node.transport is Transport.AGENT
    assert dict(node.attributes) == {"a": 1}
    assert dict(node.skills) == {}


def test_nodes_keep_declaration_order_and_lists_and_filters_are_indexed() -> None:
    inventory = build(
        {
            "nodes": [{"id": "b"}, {"id": "a", "name": "Alpha"}],
            "lists": [{"id": "L1", "name": "canaries", "nodeIds": ["a", "b", "a"]}],
            "filters": [
                {
                    "id": "F1",
                    "name": "linux",
                    "constraints": {
                        "attributes": [{"name": "kernel_name", "operator": "=", "value": "Linux"}]
                    },
                }
            ],
        }
    )
    assert [n.id for n in inventory.nodes] == ["b", "a"]
    assert inventory.nodes[1].name == "Alpha"
    assert inventory.lists == {"L1": ("a", "b")}
    assert inventory.filters["F1"].attributes[0].value == ["Linux"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            {"nodes": [{"id": "a"}, {"id": "b"}, {"id": "a"}]},
            [(("nodes", 2, "id"), "duplicate node id 'a' (first at nodes[0])")],
            id="duplicate-node",
        ),
        pytest.param(
            {"nodes": [{"id": "a"}], "lists": [{"id": "L", "nodeIds": ["a", "ghost"]}]},
            [(("lists", 0, "nodeIds", 1), "unknown node id 'ghost'")],
            id="list-unknown-node",
        ),
        pytest.param(
            {"lists": [{"id": "L"}, {"id": "L"}]},
            [(("lists", 1, "id"), "duplicate saved list id 'L' (first at lists[0])")],
            id="duplicate-list",
        ),
        pytest.param(
            {
                "filters": [
                    {"id": "F", "constraints": {}},
                    {"id": "F", "constraints": {}},
                ]
            },
            [(("filters", 1, "id"), "duplicate saved filter id 'F' (first at filters[0])")],
            id="duplicate-filter",
        ),
        pytest.param(
            {"nodes": [{"id": "a", "transport": "ssh"}]},
            [(("nodes", 0, "transport"), "Input should be 'local' or 'agent'")],
            id="bad-transport",
        ),
        pytest.param(
            {"nodes": [{"id": "a", "colour": "red"}]},
            [(("nodes", 0, "colour"), "unknown field")],
            id="unknown-field",
        ),
        pytest.param(
            {"nodes": [{"name": "no id"}]},
            [(("nodes", 0, "id"), "required field is missing")],
            id="missing-id",
        ),
        pytest.param(
            {"nodes": [{"id": "a", "skills": {"x": "latest"}}]},
            [(("nodes", 0, "skills"), "skill 'x': 'latest' is not a version like 1.2.3")],
            id="bad-skill-version",
        ),
        pytest.param(
            ["a"],
            [((), "an inventory is a mapping with nodes, lists, filters; not a list")],
            id="not-a-mapping",
        ),
    ],
)
def test_invalid_inventories(doc: Any, expected: list[Any]) -> None:
    assert messages(doc) == expected


def test_inventory_error_carries_every_finding() -> None:
    doc = {"nodes": [{"id": "a"}, {"id": "a"}], "lists": [{"id": "L", "nodeIds": ["x"]}]}
    with pytest.raises(InventoryError) as caught:
        build(doc)
    assert [f.loc for f in caught.value.findings] == [
        ("nodes", 1, "id"),
        ("lists", 0, "nodeIds", 0),
    ]
    assert "nodes[1].id: duplicate node id 'a'" in caught.value.message


def test_gather_returns_only_documented_keys() -> None:
    facts = gather()
    assert set(facts) <= set(KEYS)


@pytest.mark.skipif(sys.platform != "linux", reason="the machines this project runs on are Linux")
def test_gather_knows_every_fact_on_linux() -> None:
    facts = gather()
    assert set(facts) == set(KEYS)
    assert facts["os"] == "linux"
    assert facts["kernel_name"] == "Linux"
    assert isinstance(facts["cpu_count"], int) and facts["cpu_count"] >= 1
    assert isinstance(facts["memory_total_mb"], int) and facts["memory_total_mb"] > 0
    assert str(facts["primary_ip"]).count(".") == 3
