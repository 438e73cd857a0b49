"""Render a Plan as Terraform-like text, as JSON (DESIGN.md §7) or as a Markdown PR comment."""

from __future__ import annotations

import json
from typing import Any

from reconciler.planning import Action, Change, Plan

_SIGN = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.CANCEL: "-",
    Action.DRIFT: "!",
    Action.NOOP: " ",
}
MARKDOWN_LIMIT = 60_000


def summary_line(plan: Plan) -> str:
    s = plan.summary
    return (
        f"Plan: {s.get('create', 0)} to create, {s.get('update', 0)} to update, "
        f"{s.get('cancel', 0)} to cancel, {s.get('drift', 0)} drifted, "
        f"{s.get('noop', 0)} unchanged."
    )


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _field_lines(change: Change, indent: str) -> list[str]:
    lines = []
    for f in change.fields:
        if f.old is None:
            lines.append(f"{indent}+ {f.path}: {_value(f.new)}")
        elif f.new is None:
            lines.append(f"{indent}- {f.path}: {_value(f.old)}")
        else:
            lines.append(f"{indent}~ {f.path}: {_value(f.old)} -> {_value(f.new)}")
    return lines


def as_text(plan: Plan, *, verbose: bool = False) -> str:
    lines: list[str] = []
    changes = [
        c
        for c in plan.changes
        if c.action is not Action.NOOP or verbose or c.note.startswith("unmanaged")
    ]
    if not plan.has_changes:
        lines.append("No changes. The state matches jobs.d/.")
    else:
        lines.append("courier will perform the following actions:")
        lines.append("")
    for c in changes:
        extra = []
        if c.path:
            extra.append(c.path)
        if c.action is Action.UPDATE:
            extra.append("reruns" if c.reruns else "metadata only")
        if c.note:
            extra.append(c.note)
        suffix = f"  ({'; '.join(extra)})" if extra else ""
        lines.append(f"  {_SIGN[c.action]} {c.action.value:<6} {c.name}{suffix}")
        lines.extend(_field_lines(c, "        "))
    if plan.has_changes:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines)


def as_json(plan: Plan) -> dict[str, Any]:
    return plan.to_json()


def as_markdown(plan: Plan, limit: int = MARKDOWN_LIMIT) -> str:
    """A PR comment: a summary table first, details after, always under `limit` characters."""
    s = plan.summary
    head = [
        "### courier plan",
        "",
        "| create | update | cancel | drift | unchanged |",
        "|---:|---:|---:|---:|---:|",
        f"| {s.get('create', 0)} | {s.get('update', 0)} | {s.get('cancel', 0)} | "
        f"{s.get('drift', 0)} | {s.get('noop', 0)} |",
        "",
    ]
    blocks: list[str] = []
    for c in plan.changes:
        if c.action is Action.NOOP:
            continue
        title = f"{_SIGN[c.action]} **{c.action.value}** `{_escape(c.name)}`"
        if c.path:
            title += f" — `{_escape(c.path)}`"
        if c.action is Action.UPDATE:
            title += " (reruns)" if c.reruns else " (metadata only)"
        block = [f"- {title}"]
        if c.fields:
            block += ["  <details><summary>fields</summary>", "", "  ```diff"]
            block += ["  " + line.strip() for line in _field_lines(c, "")]
            block += ["  ```", "  </details>"]
        blocks.append("\n".join(block))
    footer = ["", summary_line(plan)]
    budget = limit - len("\n".join(head + footer)) - 200
    kept: list[str] = []
    for text in blocks:
        if len(text) + 1 > budget:
            break
        kept.append(text)
        budget -= len(text) + 1
    if len(kept) < len(blocks):
        kept.append(
            f"\n_… {len(blocks) - len(kept)} more changes not shown: "
            "run `courier plan -o json` for the whole plan._"
        )
    return "\n".join(head + kept + footer)


def _escape(text: str) -> str:
    return text.replace("`", "'").replace("|", "\\|")
