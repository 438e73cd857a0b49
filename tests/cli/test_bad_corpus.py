"""The bad-file corpus (tests/data/bad/): every file is refused by the real `courier validate`.

Each file has one problem; the table records where it is. Two files are generated (non-UTF-8 bytes,
over the 1 MiB limit) rather than kept in git. All files are validated one per process, the
processes forked from one warm interpreter (tests/forked_cli.py), then all together in one run of
the installed `courier` script.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import DATA, assert_no_crash, reported, run_courier, run_courier_forked


@dataclass(frozen=True)
class Bad:
    file: str
    line: int
    column: int | None  # None where the column is the parser's business and not stable
    field: str  # the `field` part of the problem line ("" for parse errors)
    words: str  # a piece of the message


CORPUS = [
    Bad(
        "unknown_field_did_you_mean.yaml", 20, 7, "actions.steps[0].retryCont",
        "unknown field; did you mean 'retryCount'?",
    ),
    Bad(
        "missing_required_field.yaml", 7, 7, "target.groups[0].distributionMethod",
        "required field is missing",
    ),
    Bad("wrong_enum_value.yaml", 4, 3, "target.executionType", "'serial' is not one of"),
    Bad(
        "wrong_enum_value.toml", 23, 1, "actions.steps[0].failureBehavior.action",
        "'retryThenPanic' is not one of",
    ),
    Bad("wrong_type.toml", 8, 1, "target.groups[0].timeoutSeconds", "integer"),
    Bad("percent_150.json", 12, 64, "target.groups[0].successCriteria[0].numRuns.value", "150"),
    Bad("batch_size_zero.yaml", 10, 9, "target.groups[0].batchSize.value", "at least 1"),
    Bad(
        "nodes_without_identifiers.json", 7, 7, "target.groups[0].nodeIdentifiers",
        "required and must not be empty when nodeListType is 'nodes'",
    ),
    Bad(
        "savedlist_without_listid.toml", 7, 1, "target.groups[0].listId",
        "required and must not be empty when nodeListType is 'savedList'",
    ),
    Bad("rrule_garbage.yaml", 3, 1, "scheduleRule", "SOMETIMES"),
    Bad("rrule_without_prefix.json", 4, 3, "scheduleRule", "'RRULE:'"),
    Bad(
        "matches_filter_bad_regex.yaml", 16, 15,
        "target.groups[0].filter.constraints.attributes[0].value", "not a valid regular expression",
    ),
    Bad(
        "output_rule_bad_regex.json", 30, 13, "actions.steps[0].outputFieldRules.USAGE.expression",
        "not a valid regular expression",
    ),
    Bad(
        "condition_bad_regex.toml", 25, 1, "actions.steps[0].conditions[0].value",
        "not a valid regular expression",
    ),
    Bad(
        "bad_skill_constraint.yaml", 14, 15,
        "target.groups[0].filter.constraints.skills[0].version", "not a version constraint",
    ),
    Bad(
        "bad_semver_min_version.toml", 22, 1, "actions.steps[0].interpreter.skill.minVersion",
        "'latest' is not a version",
    ),
    Bad("duplicate_key.yaml", 11, 7, "", "duplicate key 'timeoutSeconds'"),
    Bad("duplicate_key.toml", 6, None, "", "duplicate key"),
    Bad("not_utf8.yaml", 3, 18, "", "not UTF-8"),
    Bad("alias_bomb.yaml", 1, None, "", "alias bomb"),
    Bad("recursive_alias.yaml", 1, None, "", "refers to itself"),
    Bad("oversize.json", 1, 1, "", "limited to 1048576"),
    Bad("json_syntax_error.json", 4, 19, "", "invalid JSON"),
    Bad("yaml_syntax_error.yaml", 7, 26, "", "invalid YAML"),
    Bad("toml_syntax_error.toml", 4, None, "", "invalid TOML"),
    Bad("empty.yaml", 1, 1, "", "empty file"),
    Bad("empty.json", 1, 1, "", "invalid JSON"),
    Bad("list_not_mapping.yaml", 1, 1, "", "not a list"),
    Bad("list_not_mapping.json", 1, 1, "", "not a list"),
    Bad("shell_command_empty.json", 24, 9, "actions.steps[0].command", "at least one of linux"),
]  # fmt: skip
GENERATED = {"not_utf8.yaml", "oversize.json"}


def _generate(folder: Path) -> None:
    # Latin-1 'é' on line 3: the file is otherwise a fine job header.
    (folder / "not_utf8.yaml").write_bytes(
        b'name: bad-encoding\nscheduleRule: immediate\ndescription: "caf\xe9 au lait"\n'
    )
    padding = "x" * (1024 * 1024)
    (folder / "oversize.json").write_text(
        '{\n  "name": "too-big",\n  "description": "' + padding + '"\n}\n', encoding="utf-8"
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose `bad/` folder is the corpus plus its generated files."""
    root = tmp_path_factory.mktemp("bad-corpus")
    shutil.copytree(DATA / "bad", root / "bad")
    _generate(root / "bad")
    return root


@pytest.fixture(scope="session")
def one_by_one(corpus: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """`courier validate bad/FILE` for every file, each in its own process."""
    names = [bad.file for bad in CORPUS]
    return {
        name: run_courier_forked("--repo", corpus, "validate", f"bad/{name}", cwd=corpus)
        for name in names
    }


def test_corpus_is_complete() -> None:
    on_disk = {p.name for p in (DATA / "bad").iterdir()}
    in_table = {bad.file for bad in CORPUS}
    assert on_disk | GENERATED == in_table
    assert len(in_table) >= 20
    assert {Path(name).suffix for name in in_table} == {".json", ".yaml", ".toml"}


PARAMS = [pytest.param(bad, id=bad.file) for bad in CORPUS]


@pytest.mark.parametrize("bad", PARAMS)
def test_bad_file_is_refused(
    bad: Bad, one_by_one: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    proc = one_by_one[bad.file]
    assert_no_crash(proc)
    assert proc.returncode == 1, proc.stderr
    lines = [r for r in reported(proc.stderr) if not r.is_warning]
    assert lines, proc.stderr
    assert all(r.path == f"bad/{bad.file}" for r in lines), proc.stderr
    assert any(bad.words in r.rest for r in lines), proc.stderr
    if bad.field:
        assert any(r.rest.startswith(f"{bad.field}: ") for r in lines), proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("bad", PARAMS)
def test_bad_file_position(
    bad: Bad, one_by_one: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    proc = one_by_one[bad.file]
    [first] = [r for r in reported(proc.stderr) if bad.words in r.rest][:1]
    assert first.line == bad.line, proc.stderr
    if bad.column is not None:
        assert first.column == bad.column, proc.stderr


def test_whole_corpus_at_once_reports_every_file(corpus: Path) -> None:
    proc = run_courier("--repo", corpus, "validate", "bad", cwd=corpus)
    assert_no_crash(proc)
    assert proc.returncode == 1
    lines = [r for r in reported(proc.stderr) if not r.is_warning]
    by_file: dict[str, list[int]] = {}
    for r in lines:
        by_file.setdefault(r.path, []).append(r.line)
    assert set(by_file) == {f"bad/{bad.file}" for bad in CORPUS}
    for bad in CORPUS:
        assert bad.line in by_file[f"bad/{bad.file}"], (bad.file, by_file[f"bad/{bad.file}"])
    assert proc.stderr.rstrip().splitlines()[-1] == f"error: {len(lines)} problem(s) in job files"


def test_whole_corpus_as_json(corpus: Path) -> None:
    proc = run_courier("--repo", corpus, "validate", "-o", "json", "bad", cwd=corpus)
    assert_no_crash(proc)
    import json

    out = json.loads(proc.stdout)
    assert out["valid"] is False
    assert out["jobs"] == []
    assert {p["path"] for p in out["problems"]} == {f"bad/{bad.file}" for bad in CORPUS}
    for problem in out["problems"]:
        assert problem["severity"] in ("error", "warning")
        assert problem["line"] >= 1 and problem["column"] >= 1


def test_alias_bomb_is_refused_by_fmt_too(corpus: Path) -> None:
    before = (corpus / "bad" / "alias_bomb.yaml").read_bytes()
    proc = run_courier(
        "--repo", corpus, "fmt", "bad/alias_bomb.yaml", "bad/recursive_alias.yaml", cwd=corpus
    )
    assert_no_crash(proc)
    assert proc.returncode == 1
    assert {r.path for r in reported(proc.stderr)} == {
        "bad/alias_bomb.yaml",
        "bad/recursive_alias.yaml",
    }
    assert (corpus / "bad" / "alias_bomb.yaml").read_bytes() == before


@pytest.mark.parametrize(
    "name",
    [
        "duplicate_key.yaml",
        pytest.param(
            "duplicate_key.toml",
            marks=pytest.mark.xfail(
                strict=True,
                reason="BUG: reconciler/loading/parsing.py _parse_toml passes on tomllib's "
                "'Cannot overwrite a value', which does not name the key: the problem reads "
                "'invalid TOML: duplicate key: Cannot overwrite a value' with no field",
            ),
        ),
    ],
)
def test_duplicate_key_is_named(
    name: str, one_by_one: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    key = {"json": "retryCount", "yaml": "timeoutSeconds", "toml": "executionType"}
    [problem] = reported(one_by_one[name].stderr)
    assert key[name.rsplit(".", 1)[1]] in problem.rest


def test_json_duplicate_keys_load_as_chef_reads_them_with_a_warning() -> None:
    """Chef's server keeps the last of duplicate JSON keys, and Chef's own ssl_cert_rotation.json
    sample has them: a warning at the later key, never a silent pass (YAML/TOML stay errors)."""
    warn = DATA / "warn"
    proc = run_courier("--repo", warn, "validate", "duplicate_key.json", cwd=warn)
    assert_no_crash(proc)
    assert proc.returncode == 0, proc.stderr
    [problem] = reported(proc.stderr)
    assert problem.is_warning
    assert (problem.line, problem.column) == (26, 9)
    assert "actions.steps[0].retryCount: duplicate key" in problem.rest
