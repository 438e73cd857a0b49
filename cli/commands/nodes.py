"""`courier nodes list|show`: the inventory (nodes.yaml, or the implicit `local` node)."""

from __future__ import annotations

from typing import Any

import typer

from cli.commands.jobs import _table
from cli.context import OutputOption, echo, options, output_format, print_json
from cli.wiring import load_inventory
from reconciler.errors import NotFound
from reconciler.nodes.inventory import Node

nodes_app = typer.Typer(help="The nodes jobs can target.", no_args_is_help=True)


def _json(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "transport": str(node.transport),
        "attributes": dict(node.attributes),
        "tags": dict(node.tags),
        "skills": dict(node.skills),
        "enrollmentLevel": node.enrollment_level,
        "healthStatus": node.health_status,
    }


@nodes_app.command("list")
def list_(ctx: typer.Context, output: str | None = OutputOption) -> None:
    """List the nodes: id, name, transport, tags, platform."""
    inventory = load_inventory(options(ctx).repo)
    if output_format(ctx, output) == "json":
        print_json(
            {"items": [_json(n) for n in inventory.nodes], "totalItems": len(inventory.nodes)}
        )
        return
    rows = [
        (
            n.id,
            n.name,
            str(n.transport),
            ",".join(f"{k}={v}" for k, v in sorted(n.tags.items())) or "-",
            str(n.attributes.get("platform", "-")),
        )
        for n in inventory.nodes
    ]
    _table(("ID", "NAME", "TRANSPORT", "TAGS", "PLATFORM"), rows)


@nodes_app.command("show")
def show(
    ctx: typer.Context,
    node_id: str = typer.Argument(..., help="The node's id."),
    output: str | None = OutputOption,
) -> None:
    """One node with its attributes (declared over gathered), tags and skills."""
    node = load_inventory(options(ctx).repo).node(node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r} in nodes.yaml")
    if output_format(ctx, output) == "json":
        print_json({"item": _json(node)})
        return
    echo(f"{node.id}  ({node.name}, {node.transport})")
    for title, values in (
        ("attributes", node.attributes),
        ("tags", node.tags),
        ("skills", node.skills),
    ):
        echo(f"  {title}:")
        for key in sorted(values):
            echo(f"    {key}: {values[key]}")


def register(app: typer.Typer) -> None:
    app.add_typer(nodes_app, name="nodes")
