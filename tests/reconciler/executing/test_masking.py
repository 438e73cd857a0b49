from __future__ import annotations

import io
import json
import zipfile

import pytest

from reconciler.executing.masking import MASK, Masker, secret_name
from reconciler.model.enums import RunStatus, StepStatus
from tests.reconciler.executing.support import Runner, all_evidence, result_texts, step

TOKEN = "tok-3f9a'x y"  # a quote and a space: the shell-quoted form differs from the value
PASSWORD = "hunter2-pw"
OUTPUT = "out-secret-77"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("accesstoken", True),
        ("DB_PASSWORD", True),
        ("client_secret", True),
        ("apiKey", True),
        ("listen_port", False),
        ("dir", False),
    ],
)
def test_input_names_that_say_secret(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


def test_masker_masks_the_forms_a_value_takes() -> None:
    masker = Masker()
    assert not masker
    masker.add("s3cr3t value\n")
    assert masker.text("x s3cr3t value\n y") == f"x {MASK} y"
    assert masker.text("echo 's3cr3t value'") == f"echo {MASK}"  # stripped, shell-quoted
    assert masker.text('{"v": "s3cr3t value\\n"}') == f'{{"v": "{MASK}"}}'  # JSON-escaped
    assert masker.data(b"<s3cr3t value>") == f"<{MASK}>".encode()
    masker.add("")
    assert masker.text("") == ""


def test_sensitive_values_never_reach_results_or_evidence(runner: Runner) -> None:
    produce = step(
        f"echo {OUTPUT}",
        outputFieldRules={
            "OUT": {
                "sourceType": "output",
                "extractMethod": "regex",
                "expression": r"out-\S+",
                "sensitive": True,
            },
        },
    )
    use = step(
        "echo token={{.api_token}} pw={{.PW}} out={{.OUT}}",
        "echo to-stderr {{.api_token}} {{.PW}} {{.OUT}} >&2",
        'echo {{.PW}} > "$COURIER_EVIDENCE_DIR/left-{{.OUT}}.txt"',
        "exit 4",
        inputs={"api_token": TOKEN, "listen_port": "8080"},
        expectedInputs={"PW": {"default": PASSWORD, "sensitive": True}, "OUT": {}},
        outputFieldRules={
            "ECHO": {"sourceType": "output", "extractMethod": "content"},
        },
        failureBehavior={"action": "retryThenIgnore"},
    )
    skip = step("true", conditions=[{"inputName": "OUT", "operator": "eq", "value": "nope"}])
    outcome = runner([produce, use, skip])
    assert outcome.status is RunStatus.SUCCESS
    used = outcome.steps[1]
    assert used.status is StepStatus.IGNORED
    assert json.loads(used.inputs) == {
        "api_token": MASK,
        "listen_port": "8080",
        "PW": MASK,
        "OUT": MASK,
    }
    assert json.loads(used.outputs) == {"ECHO": f"token={MASK} pw={MASK} out={MASK}\n"}
    assert MASK in outcome.steps[2].reason  # the skip reason quotes the value

    secrets = [TOKEN, PASSWORD, OUTPUT, "tok-3f9a"]
    for result in outcome.steps:
        for text in result_texts(result):
            assert not any(s in text for s in secrets), text
    zips = all_evidence(runner.evidence_root)
    assert len(zips) == 2
    for data in zips:
        assert not any(s.encode() in data for s in secrets)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                assert not any(s in info.filename for s in secrets)
                body = archive.read(info)
                assert not any(s.encode() in body for s in secrets), (info.filename, body)
    assert runner.member(2, 1, "command.txt").startswith(f"echo token={MASK} pw={MASK} out={MASK}")
    names = runner.zip_of(2, 1).namelist()
    assert f"files/left-{MASK}.txt" in names
    assert runner.member(2, 1, "stderr.txt") == f"to-stderr {MASK} {MASK} {MASK}\n"
