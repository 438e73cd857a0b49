"""`courier fmt`: rewrite job files in the canonical layout, keeping YAML and TOML comments.

The canonical layout orders fields as the schema does (SPEC.md §1), renames legacy keys in place
(`retryBackoffStrategy.name` -> `type`, `limits.time` -> `timeoutSeconds`, `schduleRule`,
`regEx`), indents JSON by 2 and YAML by 2 with sequences indented under their key. Defaults are not
filled: `fmt` changes how a file reads, never what it means. Formatting twice changes nothing.
TOML files are only round-tripped (see `format_text`).
"""

from __future__ import annotations

import io
import json
from typing import Any

import tomlkit
from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.loading.parsing import decode, parse
from reconciler.model.job import JobTemplate
from reconciler.model.validating import _model_of, _strip

_RENAMES = {"schduleRule": "scheduleRule", "time": "timeoutSeconds"}


def format_text(data: bytes, fmt: str) -> str:
    """The formatted text of a job file. Raises ParseError when the file does not parse."""
    text = decode(data)
    parse(text, fmt)  # refuse what the loader refuses (duplicates, bombs) before rewriting
    if fmt == "json":
        doc = json.loads(text)
        _rewrite(doc, JobTemplate)
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        header, body = _split_header(text)
        yaml = _rt_yaml()
        ydoc = yaml.load(body)
        _rewrite(ydoc, JobTemplate)
        out = io.StringIO()
        yaml.dump(ydoc, out)
        return header + out.getvalue()
    # TOML is kept as written: tomlkit round-trips it exactly, and moving TOML tables around
    # would separate comments from what they describe.
    return tomlkit.dumps(tomlkit.parse(text))


def _split_header(text: str) -> tuple[str, str]:
    """Comments before a `---` line: ruamel drops them, so they are kept aside verbatim."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "---" or stripped.startswith("--- "):
            return "".join(lines[: i + 1]), "".join(lines[i + 1 :])
        if stripped and not stripped.startswith("#"):
            break
    return "", text


def _rt_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.explicit_start = False
    return yaml


def _rewrite(node: Any, model: Any) -> None:
    """Rename legacy keys and order fields by the model, recursively, in place."""
    cls = _model_of(model)
    if isinstance(node, list):
        for item in node:
            _rewrite(item, model)
        return
    if not isinstance(node, dict) or cls is None:
        return
    _rename(node, cls)
    fields = cls.model_fields
    for key in list(node):
        info = fields.get(key)
        if info is None:
            continue
        annotation = _strip(info.annotation)
        origin = getattr(annotation, "__origin__", None)
        if origin is dict:
            for value in node[key].values() if isinstance(node[key], dict) else ():
                _rewrite(value, annotation.__args__[1])
        elif origin is list:
            _rewrite(node[key], annotation.__args__[0])
        else:
            _rewrite(node[key], annotation)
    order = {name: i for i, name in enumerate(fields)}
    keys = sorted(node, key=lambda k: (order.get(k, len(order)), list(node).index(k)))
    if keys != list(node):
        if isinstance(node, CommentedMap):
            if _has_comments(node):
                # ruamel ties a full-line comment to the key *before* it; moving keys would
                # carry comments away from what they describe. Keep the order, keep the meaning.
                return
            for key in keys:
                node.move_to_end(key)
        else:
            items = [(k, node.pop(k)) for k in keys]
            node.update(items)


def _has_comments(node: CommentedMap) -> bool:
    """True when a full-line comment sits between two keys of `node` (or at the end of a value).

    End-of-line comments and comments before a key's value move with their key; a full-line
    comment between keys is stored on the key *before* it, so reordering would misplace it.
    """
    for key in node:
        entry = node.ca.items.get(key)
        if entry and len(entry) > 2 and _line_comment(entry[2]):
            return True
        if _trailing_comment(node[key]):
            return True
    return False


def _line_comment(token: Any) -> bool:
    tokens = token if isinstance(token, list) else [token]
    for t in tokens:
        value = getattr(t, "value", "") or ""
        rest = value.split("\n", 1)[1] if "\n" in value else ""
        if "#" in rest or (value.startswith("\n") and "#" in value):
            return True
    return False


def _trailing_comment(value: Any) -> bool:
    if isinstance(value, CommentedMap) and value:
        last = list(value)[-1]
        entry = value.ca.items.get(last)
        if entry and len(entry) > 2 and _line_comment(entry[2]):
            return True
        return _trailing_comment(value[last])
    if isinstance(value, CommentedSeq) and value:
        entry = value.ca.items.get(len(value) - 1)
        if entry and _line_comment(entry[0] if entry[0] is not None else (entry[1:] or [None])[0]):
            return True
        return _trailing_comment(value[-1])
    return False


def _rename(node: dict[str, Any], cls: type[BaseModel]) -> None:
    renames = dict(_RENAMES)
    if cls.__name__ == "BackoffStrategy":
        renames["name"] = "type"
    if cls.__name__ == "OutputFieldRule" and isinstance(node.get("extractMethod"), str):
        method = node["extractMethod"]
        fixed = {"regex": "regex", "jsonpath": "jsonPath", "content": "content"}.get(method.lower())
        if fixed and fixed != method:
            node["extractMethod"] = fixed
    for old, new in renames.items():
        if old in node and new not in node and (old != "time" or cls.__name__ == "Limits"):
            position = list(node).index(old)
            value = node[old]
            if isinstance(node, CommentedMap):
                comment = node.ca.items.pop(old, None)
                del node[old]
                node.insert(position, new, value)
                if comment is not None:
                    node.ca.items[new] = comment
            else:
                items = list(node.items())
                items[position] = (new, value)
                node.clear()
                node.update(items)
