"""`reconciler.reporting` without the CLI: slugs, text, the timeline, report data from an in-memory
source, rendering (escaping, determinism, links) and writing (ownership, stale files, git)."""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import NotFound
from reconciler.model.enums import InstanceStatus, JobStatus, RunStatus, StepStatus
from reconciler.ports import (
    AttemptResult,
    JobVersion,
    StepResult,
    StoredInstance,
    StoredJob,
    StoredRun,
    StoredState,
    evidence_key,
)
from reconciler.reporting import GENERATED, Links, build_report, render
from reconciler.reporting.data import BulkReportSource, ReportSource
from reconciler.reporting.text import (
    base_slug,
    clean,
    duration,
    md_fence,
    md_inline,
    slugs,
    tail,
    zip_tails,
)
from reconciler.reporting.timeline import LABEL_WIDTH, MIN_BAR, PLOT_WIDTH, Span, layout
from reconciler.reporting.writing import (
    ReportWriteError,
    commit_report,
    parse_author,
    push,
    write_report,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


# -- slugs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../x", "../../etc/passwd", "/abs/path", "a/b\\c", "..", ".", "", "C:\\x", "x\0y", "-"],
)
def test_slugs_never_leave_the_folder(name: str) -> None:
    slug = slugs([name])[name]
    assert SLUG.match(slug), slug
    assert "/" not in slug and "." not in slug and "\\" not in slug


def test_a_name_that_is_a_slug_keeps_it_and_others_get_a_hash() -> None:
    found = slugs(["disk-report", "Disk Report", "disk report"])
    assert found["disk-report"] == "disk-report"
    assert re.fullmatch(r"disk-report-[0-9a-f]{8}", found["Disk Report"])
    assert re.fullmatch(r"disk-report-[0-9a-f]{8}", found["disk report"])
    assert len(set(found.values())) == 3


def test_unicode_names_fold_to_ascii() -> None:
    assert base_slug("Déploiement été") == "deploiement-ete"
    assert base_slug("日本語") == "job"
    found = slugs(["Déploiement été", "日本語", "ジョブ"])
    assert found["Déploiement été"].startswith("deploiement-ete-")
    assert found["日本語"] != found["ジョブ"]
    assert all(SLUG.match(s) for s in found.values())


def test_slugs_do_not_depend_on_order_or_on_other_names() -> None:
    names = ["b", "A", "a b", "a-b", "../x"]
    assert slugs(names) == slugs(reversed(names))
    assert slugs(names)["a b"] == slugs(["a b"])["a b"]


def test_a_name_spelled_like_another_names_slug_forces_longer_hashes() -> None:
    other = slugs(["A b"])["A b"]  # a-b-xxxxxxxx
    found = slugs(["A b", other])
    assert found[other] == other
    assert re.fullmatch(r"a-b-[0-9a-f]{16}", found["A b"])


def test_reserved_device_names_and_long_names() -> None:
    assert slugs(["con"])["con"].startswith("con-")
    long = "x" * 300
    assert len(slugs([long])[long]) <= 60 + 1 + 8


# -- text --------------------------------------------------------------------------------------


def test_clean_drops_escapes_and_control_characters() -> None:
    raw = "\x1b[31mred\x1b[0m ok\x00\x07\x1b]0;title\x07\r\nprogress 10%\rprogress 100%\n\ttab"
    assert clean(raw) == "red ok\nprogress 100%\n\ttab"


def test_tail_keeps_the_last_lines_and_says_so() -> None:
    data = "".join(f"line {i}\n" for i in range(1, 31)).encode()
    found = tail(data, 20)
    assert found.text.splitlines()[0] == "line 11" and found.text.endswith("line 30")
    assert found.omitted
    short = tail(b"one\ntwo\n\n")
    assert short.text == "one\ntwo" and not short.omitted
    assert tail(b"").empty
    assert tail(b"\xff\xfebad utf8").text.endswith("bad utf8")


def test_tail_of_huge_output_reads_only_its_end() -> None:
    data = b"x" * 1_000_000 + b"\nlast\n"
    found = tail(data)
    assert found.text.endswith("last") and found.omitted
    assert all(len(line) <= 401 for line in found.text.splitlines())


def test_zip_tails_reads_stderr_and_stdout() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stdout.txt", "out\n")
        zf.writestr("stderr.txt", "err\n")
    stderr, stdout = zip_tails(buffer.getvalue())
    assert (stderr.text, stdout.text) == ("err", "out")


def test_markdown_escaping() -> None:
    assert md_inline("a|b *c* [d](e) <script>") == ("a\\|b \\*c\\* \\[d\\](e) &lt;script&gt;")
    assert md_inline("two\nlines") == "two lines"
    assert md_fence("no ticks") == "```"
    assert md_fence("has ```` four") == "`````"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0123, "0.012s"),
        (4.56, "4.6s"),
        (42, "42s"),
        (123, "2m 03s"),
        (3720, "1h 02m"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


# -- the timeline ------------------------------------------------------------------------------


def span(
    node: str, group: int, start: int | None, end: int | None, status: str = "success"
) -> Span:
    def at(seconds: int | None) -> datetime | None:
        return None if seconds is None else T0 + timedelta(seconds=seconds)

    return Span(node, group, status, at(start), at(end), f"{node} {status}")


def test_timeline_rows_by_group_then_node_and_bars_scaled_in_time() -> None:
    tl = layout(
        [
            span("web-2", 1, 10, 20),
            span("canary", 0, 0, 10),
            span("web-1", 1, 10, 40, "failure"),
        ]
    )
    assert [(r.group, r.node_id) for r in tl.rows] == [(0, "canary"), (1, "web-1"), (1, "web-2")]
    bars = {b.title: b for b in tl.bars}
    assert float(bars["canary success"].x) == LABEL_WIDTH
    assert float(bars["canary success"].width) == pytest.approx(PLOT_WIDTH / 4, abs=0.1)
    assert float(bars["web-1 failure"].x) + float(bars["web-1 failure"].width) == pytest.approx(
        LABEL_WIDTH + PLOT_WIDTH, abs=0.1
    )
    assert bars["web-1 failure"].status == "failure"
    assert float(bars["web-1 failure"].y) < float(bars["web-2 success"].y)
    assert [t.anchor for t in tl.ticks] == ["start", "middle", "end"]
    assert tl.ticks[0].label == "2026-03-01T12:00:00Z" and tl.ticks[-1].label.endswith("00:40Z")


def test_timeline_is_deterministic_and_uses_fixed_precision() -> None:
    spans = [span(f"n{i}", i % 3, i, i + 1) for i in range(7)]
    assert layout(spans) == layout(list(spans))
    assert layout(spans).rows == layout(list(reversed(spans))).rows
    assert [b.title for b in layout(spans).bars] == [s.title for s in spans]  # drawn in order
    for bar in layout(spans).bars:
        for value in (bar.x, bar.y, bar.width):
            assert re.fullmatch(r"\d+\.\d", value), value


def test_timeline_edge_cases() -> None:
    empty = layout([span("a", 0, None, None, "pending")])
    assert empty.empty and [r.node_id for r in empty.rows] == ["a"]
    instant = layout([span("a", 0, 5, 5)])
    assert float(instant.bars[0].width) >= MIN_BAR
    canceled = layout([span("a", 0, None, 3, "canceled"), span("b", 0, 0, 1)])
    assert {b.status for b in canceled.bars} == {"canceled", "success"}
    assert all(
        float(b.x) + float(b.width) <= LABEL_WIDTH + PLOT_WIDTH + 0.05 for b in canceled.bars
    )
    assert layout([]).empty


# -- report data from an in-memory source ------------------------------------------------------


def spec(name: str, steps: list[str], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "scheduleRule": "immediate",
        "actions": {"steps": [{"name": s} for s in steps]},
    }


@dataclass
class FakeState:
    """A `ReportSource` in memory; counts calls so tests can see which reads were made."""

    jobs: dict[str, StoredJob] = field(default_factory=dict)
    versions: dict[str, list[JobVersion]] = field(default_factory=dict)
    all_instances: list[StoredInstance] = field(default_factory=list)
    all_runs: dict[str, list[StoredRun]] = field(default_factory=dict)
    all_steps: dict[str, list[StepResult]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def read(self) -> StoredState:
        return StoredState(dict(self.jobs), 1)

    def instances(self, job_id: str | None = None) -> list[StoredInstance]:
        return [i for i in self.all_instances if job_id is None or i.job_id == job_id]

    def runs(self, instance_id: str) -> list[StoredRun]:
        self.calls.append("runs")
        return self.all_runs.get(instance_id, [])

    def steps(self, run_id: str) -> list[StepResult]:
        self.calls.append("steps")
        return self.all_steps.get(run_id, [])

    def job_versions(self, job_id: str) -> list[JobVersion]:
        self.calls.append("versions")
        return self.versions[job_id]

    def add_job(self, name: str, steps: list[str], *, version: int = 1, **kw: Any) -> StoredJob:
        job = StoredJob(
            id=f"job-{name}",
            name=name,
            status=JobStatus.ACTIVE,
            managed=True,
            origin_path=f"jobs.d/{name}.yaml",
            version=version,
            spec=spec(name, steps, **kw),
            hash="h",
            blob_id=None,
            created_at=T0,
            modified_at=T0,
            next_execution_time=None,
            execution_count=0,
        )
        self.jobs[name] = job
        return job

    def add_instance(self, job: StoredJob, n: int, status: InstanceStatus, version: int = 1) -> str:
        instance_id = f"{job.name}-inst-{n:03d}"
        at = T0 + timedelta(minutes=n)
        self.all_instances.append(
            StoredInstance(instance_id, job.id, version, status, at, at, at + timedelta(seconds=5))
        )
        return instance_id

    def add_run(
        self, instance_id: str, node: str, status: RunStatus, *, group: int = 0, start: int = 0
    ) -> str:
        run_id = f"{instance_id}-{node}"
        at = T0 + timedelta(seconds=start)
        run = StoredRun(run_id, instance_id, node, group, status, at, at + timedelta(seconds=2))
        self.all_runs.setdefault(instance_id, []).append(run)
        return run_id

    def add_step(self, run_id: str, number: int, status: StepStatus, attempts: int = 1) -> None:
        self.all_steps.setdefault(run_id, []).append(
            StepResult(
                step_number=number,
                status=status,
                num_attempts=attempts,
                reason="exit 1" if status is StepStatus.FAILURE else "",
                attempts=tuple(
                    AttemptResult(
                        attempt_no=a,
                        status=status if a == attempts else StepStatus.FAILURE,
                        exit_code=1 if status is StepStatus.FAILURE else 0,
                        started_at=T0,
                        ended_at=T0 + timedelta(milliseconds=250),
                        evidence_key=evidence_key(run_id, number, a),
                    )
                    for a in range(1, attempts + 1)
                ),
            )
        )


def evidence_zip(stderr: str, stdout: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stdout.txt", stdout)
        zf.writestr("stderr.txt", stderr)
    return buffer.getvalue()


def two_jobs() -> FakeState:
    fake = FakeState()
    ok = fake.add_job("ok", ["hello"], description="<script>alert(1)</script>")
    bad = fake.add_job("bad | job", ["prepare", "break"])
    inst = fake.add_instance(ok, 1, InstanceStatus.SUCCESS)
    for node in ("node-b", "node-a"):
        fake.add_step(fake.add_run(inst, node, RunStatus.SUCCESS), 1, StepStatus.SUCCESS)
    inst = fake.add_instance(bad, 2, InstanceStatus.FAILURE)
    run = fake.add_run(inst, "node-a", RunStatus.FAILURE)
    fake.add_step(run, 1, StepStatus.SUCCESS)
    fake.add_step(run, 2, StepStatus.FAILURE, attempts=2)
    return fake


def test_fake_source_satisfies_the_protocol() -> None:
    source: ReportSource = FakeState()
    assert not isinstance(source, BulkReportSource)


def test_report_data_from_the_state() -> None:
    fake = two_jobs()
    read: list[str] = []

    def reader(key: str) -> bytes:
        read.append(key)
        return evidence_zip("boom\n", "".join(f"{i}\n" for i in range(50)))

    report = build_report(fake, read_evidence=reader, last=5)
    assert [j.name for j in report.jobs] == ["bad | job", "ok"]
    bad, ok = report.jobs
    assert bad.slug.startswith("bad-job-") and ok.slug == "ok"
    assert (bad.last_status, bad.ratio) == ("failure", "0/1 (0%)")
    assert (ok.last_status, ok.ratio) == ("success", "1/1 (100%)")
    assert report.summary == "1 success, 1 failure"
    view = bad.instances[0]
    (failure,) = view.failures
    run, step = failure.run, failure.step
    assert failure.tail is view.tails[run.id, 2]
    assert step is view.steps[run.id][1]
    assert view.step_name(step.step_number) == "break"
    assert [a.attempt_no for a in step.attempts] == [1, 2]
    tail = view.tails[run.id, 2]
    assert tail.stderr is not None and tail.stderr.text == "boom"
    assert tail.stdout is not None and tail.stdout.text.endswith("49") and tail.stdout.omitted
    assert list(view.tails) == [(run.id, 2)]
    # only the failed step's last attempt is read
    assert read == [evidence_key(run.id, 2, 2)]
    assert [r.node_id for r in ok.instances[0].runs] == ["node-b", "node-a"]  # store order
    assert [r.node_id for r in ok.timeline.rows] == ["node-a", "node-b"]


def test_missing_evidence_is_reported_not_raised() -> None:
    def reader(key: str) -> bytes:
        raise NotFound(f"no evidence stored under {key!r}")

    report = build_report(two_jobs(), read_evidence=reader)
    (tail,) = report.jobs[0].instances[0].tails.values()
    assert tail.stderr is None and tail.note.startswith("evidence not available")
    broken = build_report(two_jobs(), read_evidence=lambda key: b"not a zip")
    (tail,) = broken.jobs[0].instances[0].tails.values()
    assert tail.note == "evidence is not a valid zip"
    (tail,) = build_report(two_jobs()).jobs[0].instances[0].tails.values()
    assert tail.note == "output not read"


def test_instances_newest_first_capped_and_ratio_over_the_last_finished() -> None:
    fake = FakeState()
    job = fake.add_job("many", ["s"])
    statuses = [InstanceStatus.FAILURE] * 5 + [InstanceStatus.SUCCESS] * 24
    for n, status in enumerate([*statuses, InstanceStatus.PENDING]):
        fake.add_instance(job, n, status)
    report = build_report(fake, last=10, max_instances=20)
    (many,) = report.jobs
    assert many.instance_total == 30 and len(many.instances) == 20
    assert many.instances[0].id.endswith("029") and many.instances[-1].id.endswith("010")
    assert many.last_status == "pending"
    assert many.ratio == "10/10 (100%)"
    assert build_report(fake, last=29).jobs[0].ratio == "24/29 (83%)"
    assert fake.calls.count("runs") == 40  # only the shown instances' runs were read


def test_step_names_come_from_the_version_an_instance_ran() -> None:
    fake = FakeState()
    job = fake.add_job("evolving", ["new name"], version=2)
    fake.versions[job.id] = [
        JobVersion(spec("evolving", ["old name"]), "h1", None, None, None, T0),
        JobVersion(spec("evolving", ["new name"]), "h2", None, None, None, T0),
    ]
    old = fake.add_instance(job, 1, InstanceStatus.SUCCESS, version=1)
    new = fake.add_instance(job, 2, InstanceStatus.SUCCESS, version=2)
    for inst in (old, new):
        fake.add_step(fake.add_run(inst, "n", RunStatus.SUCCESS), 1, StepStatus.SUCCESS)
    (report,) = build_report(fake).jobs
    assert [i.step_name(1) for i in report.instances] == ["new name", "old name"]


def test_bulk_reads_are_used_when_the_source_has_them() -> None:
    fake = two_jobs()

    class Bulk(FakeState):
        def runs_of(self, instance_ids: Any) -> dict[str, list[StoredRun]]:
            self.calls.append("runs_of")
            return {i: self.all_runs.get(i, []) for i in instance_ids}

        def steps_of(self, run_ids: Any) -> dict[str, list[StepResult]]:
            self.calls.append("steps_of")
            return {r: self.all_steps.get(r, []) for r in run_ids}

    bulk = Bulk(fake.jobs, fake.versions, fake.all_instances, fake.all_runs, fake.all_steps)
    assert isinstance(bulk, BulkReportSource)
    assert build_report(bulk) == build_report(fake)
    assert bulk.calls == ["runs_of", "steps_of"]


# -- rendering ---------------------------------------------------------------------------------

LOCAL = Links(serve_url=None, evidence_dir="../.courier/evidence", repo_dir="..")


def rendered(fake: FakeState | None = None, links: Links = LOCAL) -> dict[str, str]:
    reader = lambda key: evidence_zip("disk <full> & </details>\n```\n", "out\n")  # noqa: E731
    report = build_report(fake or two_jobs(), read_evidence=reader)
    return {path: data.decode("utf-8") for path, data in render(report, links).items()}


def test_files_and_their_first_line() -> None:
    files = rendered()
    bad_slug = slugs(["bad | job"])["bad | job"]
    assert sorted(files) == [
        "README.md",
        "index.html",
        f"jobs/{bad_slug}.md",
        "jobs/ok.md",
        "junit.xml",
    ]
    for path, text in files.items():
        lines = text.splitlines()
        if path.endswith(".xml"):
            assert lines[0].startswith("<?xml ") and GENERATED in lines[1]
        else:
            assert lines[0] == "<!-- generated by `courier report`; do not edit -->"
        assert text.endswith("\n") and "\r" not in text


def test_rendering_is_deterministic() -> None:
    assert rendered() == rendered()


def test_html_escapes_data() -> None:
    html = rendered()["index.html"]
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<svg" in html and "</svg>" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html


def test_markdown_escapes_data_and_fences_output() -> None:
    files = rendered()
    readme = files["README.md"]
    assert "bad \\| job" in readme
    ok_page = files["jobs/ok.md"]
    assert "<script" not in ok_page and "&lt;script&gt;" in ok_page
    bad_page = next(v for k, v in files.items() if k.startswith("jobs/bad-job"))
    assert bad_page.count("\n<details>\n") == 1 and bad_page.count("\n</details>\n") == 1
    assert "````text\ndisk <full> & </details>\n```\n````" in bad_page
    assert "](../../.courier/evidence/run/" in bad_page


def test_junit_parses_with_a_case_per_run() -> None:
    root = ET.fromstring(rendered()["junit.xml"].encode())  # noqa: S314 - our own output
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 3 and root.get("tests") == "3" and root.get("failures") == "1"
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("classname") == "bad | job"
    assert failed.get("name") == "node-a (group 0) instance bad | jo"
    failure = failed.find("failure")
    assert failure is not None and "disk <full> & </details>" in (failure.text or "")


def test_junit_survives_control_characters_and_marks_canceled_runs_skipped() -> None:
    fake = FakeState()
    job = fake.add_job("ctl\x1b[31m\x00", ["s"])
    inst = fake.add_instance(job, 1, InstanceStatus.CANCELED)
    fake.add_run(inst, "n\x07", RunStatus.CANCELED)
    text = rendered(fake)["junit.xml"]
    root = ET.fromstring(text.encode())  # noqa: S314 - our own output
    assert root.get("skipped") == "1"
    assert root.find("./testsuite/testcase/skipped") is not None


def test_hostile_node_ids_and_reasons_stay_inside_their_table_row() -> None:
    fake = FakeState()
    job = fake.add_job("j", ["s"])
    inst = fake.add_instance(job, 1, InstanceStatus.FAILURE)
    run_id = fake.add_run(inst, "n|x <b>\n| y", RunStatus.FAILURE)
    runs = fake.all_runs[inst]
    runs[0] = StoredRun(
        run_id, inst, "n|x <b>\n| y", 0, RunStatus.FAILURE, T0, T0, "line one\n| line two"
    )
    fake.add_step(run_id, 1, StepStatus.FAILURE)
    page = rendered(fake)["jobs/j.md"]
    (row,) = [line for line in page.splitlines() if line.startswith("| 0 |")]
    assert "n\\|x &lt;b&gt; \\| y" in row and row.endswith("line one \\| line two |")
    assert row.count(" | ") == 7  # eight cells, whatever the data
    html = rendered(fake)["index.html"]
    assert "<b>" not in html and "n|x &lt;b&gt;" in html


def test_links_to_courier_serve_when_configured() -> None:
    serve = Links(serve_url="https://courier.example:8443", evidence_dir="x", repo_dir="..")
    files = rendered(links=serve)
    bad_page = next(v for k, v in files.items() if k.startswith("jobs/bad-job"))
    assert "(https://courier.example:8443/evidence/run/bad%20%7C%20job-inst-002-node-a" in bad_page
    assert "/step/2/attempt/2)" in bad_page
    assert ".courier/evidence" not in bad_page


# -- writing -----------------------------------------------------------------------------------


def marked(text: str) -> bytes:
    return f"<!-- {GENERATED} -->\n{text}\n".encode()


def test_write_only_what_changed_and_remove_stale_generated_pages(tmp_path: Path) -> None:
    out = tmp_path / "status"
    first = write_report(out, {"README.md": marked("a"), "jobs/x.md": marked("x")})
    assert first.changed == ("README.md", "jobs/x.md") and first.removed == ()
    (out / "jobs" / "notes.md").write_text("mine\n")
    again = write_report(out, {"README.md": marked("a"), "jobs/y.md": marked("y")})
    assert again.changed == ("jobs/y.md",) and again.removed == ("jobs/x.md",)
    assert again.unchanged == 1
    assert (out / "jobs" / "notes.md").read_text() == "mine\n"
    assert sorted(p.name for p in (out / "jobs").iterdir()) == ["notes.md", "y.md"]


def test_write_refuses_files_it_did_not_generate(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my project\n")
    with pytest.raises(ReportWriteError, match="not generated by `courier report`"):
        write_report(tmp_path, {"README.md": marked("a"), "index.html": marked("b")})
    assert not (tmp_path / "index.html").exists()
    assert (tmp_path / "README.md").read_text() == "# my project\n"


@pytest.mark.parametrize("bad", ["../x.md", "/etc/x", "jobs/../../x", "", "a//b"])
def test_write_refuses_paths_outside_the_out_dir(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ReportWriteError):
        write_report(tmp_path / "out", {bad: marked("x")})


def test_write_refuses_a_symlink_out_of_the_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "jobs").symlink_to(tmp_path)
    with pytest.raises(ReportWriteError, match="outside"):
        write_report(out, {"jobs/x.md": marked("x")})


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Tester")
    git(root, "config", "user.email", "tester@example.invalid")
    git(root, "config", "commit.gpgsign", "false")
    return root


def test_commit_on_an_unborn_branch_and_no_op_commit(repo: Path) -> None:
    out = repo / "status"
    write_report(out, {"README.md": marked("a")})
    made = commit_report(out, ["README.md"], "courier report: 1 jobs")
    assert made and git(repo, "rev-parse", "HEAD") == made
    assert git(repo, "show", "--name-only", "--format=%s", made).splitlines() == [
        "courier report: 1 jobs",
        "",
        "status/README.md",
    ]
    assert commit_report(out, ["README.md"], "again") is None
    assert git(repo, "status", "--porcelain") == ""


def test_commit_leaves_other_staged_changes_staged(repo: Path) -> None:
    (repo / "app.txt").write_text("v1\n")
    git(repo, "add", "app.txt")
    git(repo, "commit", "-qm", "app")
    (repo / "app.txt").write_text("v2\n")
    git(repo, "add", "app.txt")
    out = repo / "status"
    write_report(out, {"README.md": marked("a"), "jobs/j.md": marked("j")})
    made = commit_report(
        out, ["README.md", "jobs/j.md"], "report", "Report Bot <bot@example.invalid>"
    )
    assert made
    assert sorted(git(repo, "show", "--name-only", "--format=", made).split()) == [
        "status/README.md",
        "status/jobs/j.md",
    ]
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "Report Bot <bot@example.invalid>"
    assert git(repo, "status", "--porcelain") == "M  app.txt"
    # a removed page is committed as a removal
    written = write_report(out, {"README.md": marked("b")})
    assert written.removed == ("jobs/j.md",)
    made = commit_report(out, ["README.md", *written.removed], "report 2")
    assert made
    assert git(repo, "show", "--name-status", "--format=", made).splitlines() == [
        "M\tstatus/README.md",
        "D\tstatus/jobs/j.md",
    ]
    assert git(repo, "status", "--porcelain") == "M  app.txt"


def test_commit_outside_a_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ReportWriteError, match="git repository"):
        commit_report(tmp_path, ["README.md"], "m")


def test_author_must_be_name_and_email() -> None:
    assert parse_author("Report Bot <bot@x.invalid>") == ("Report Bot", "bot@x.invalid")
    with pytest.raises(ReportWriteError):
        parse_author("just a name")


def test_push_needs_an_upstream_then_pushes(repo: Path, tmp_path: Path) -> None:
    write_report(repo / "status", {"README.md": marked("a")})
    commit_report(repo / "status", ["README.md"], "report")
    with pytest.raises(ReportWriteError, match="no upstream"):
        push(repo)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "-u", "origin", "main")
    write_report(repo / "status", {"README.md": marked("b")})
    made = commit_report(repo / "status", ["README.md"], "report 2")
    assert push(repo) == "origin/main"
    assert git(remote, "rev-parse", "main") == made


def test_templates_are_shipped_as_package_data() -> None:
    import fnmatch
    import tomllib

    import reconciler.reporting

    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    templates = Path(reconciler.reporting.__file__).parent / "templates"
    names = sorted(p.name for p in templates.iterdir() if p.is_file())
    assert "index.html.j2" in names and "junit.xml.j2" in names
    for name in names:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{name} would not be shipped"
