"""The parts of the report with one line per run, rendered in Python for the templates to place.

A report of 100,000 runs has a job-page row, a timeline bar and a JUnit testcase for each; done
field by field in jinja2 they made rendering 2.3 times as slow (bench/RESULTS.md, `## report`),
so these bodies are plain string building here, escaped explicitly (`md` for Markdown, `xml`
for HTML and XML), and everything else stays in the templates. Each returns `Markup`: already
safe, placed as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from markupsafe import Markup, escape

from reconciler.ports import AttemptResult, StepResult, StoredRun
from reconciler.reporting.data import FAILED_RUN, FAILED_STEP, InstanceView
from reconciler.reporting.text import clean, duration, md_inline, one_line, rfc3339
from reconciler.reporting.timeline import Timeline

EvidenceHref = Callable[[str, int, AttemptResult], str]
_PLAIN_MD = re.compile(r"[^\\`*_\[\]|~<>&\x00-\x1f\x7f-\x9f\ufffe\uffff]*")
_NO_CONTROL = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]*")
_PLAIN_XML = re.compile(r"[^<>&\"'\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]*")


@lru_cache(maxsize=8192)
def md(text: str) -> str:
    """Plain text as Markdown inline text (cached: node ids and step names repeat a lot)."""
    return text if _PLAIN_MD.fullmatch(text) else md_inline(text)


def clean_markup(text: str) -> str:
    """`text` without control characters (invalid in XML 1.0); fast path when it has none."""
    return text if _NO_CONTROL.fullmatch(text) else clean(text)


def xml(text: str) -> str:
    """Plain text escaped for HTML and XML, control characters dropped."""
    return text if _PLAIN_XML.fullmatch(text) else str(escape(clean_markup(text)))


xml_cached = lru_cache(maxsize=8192)(xml)
"""`xml` for values that repeat (node ids, statuses, job names)."""


def _seconds(run: StoredRun) -> float | None:
    if run.received_time is None or run.last_update_time is None:
        return None
    return max((run.last_update_time - run.received_time).total_seconds(), 0.0)


# -- job pages (Markdown) ----------------------------------------------------------------------


def md_run_rows(view: InstanceView, evidence: EvidenceHref) -> Markup:
    """The rows of an instance's run table: group, node, run, status, started, duration, steps
    (each with its attempts, durations and evidence links), reason."""
    lines = []
    for run in view.runs:
        steps = view.steps.get(run.id, ())
        done = " · ".join([_md_step(view, run.id, step, evidence) for step in steps]) or "-"
        reason = md(one_line(run.reason)) if run.reason else "-"
        lines.append(
            f"| {run.group_number} | {md(run.node_id)} | {run.id[:8]} | {run.status.value} | "
            f"{rfc3339(run.received_time)} | {duration(_seconds(run))} | {done} | {reason} |"
        )
    return Markup("\n".join(lines))  # noqa: S704 - every cell escaped above


def _md_step(view: InstanceView, run_id: str, step: StepResult, evidence: EvidenceHref) -> str:
    name = view.step_name(step.step_number)
    status = step.status.value
    head = f"{step.step_number} {md(name)}: {status}" if name else f"{step.step_number}: {status}"
    many = len(step.attempts) > 1
    parts = []
    for attempt in step.attempts:
        text = f"#{attempt.attempt_no} {attempt.status.value}, " if many else ""
        if attempt.exit_code:
            text += f"exit {attempt.exit_code}, "
        seconds = max((attempt.ended_at - attempt.started_at).total_seconds(), 0.0)
        text += duration(seconds)
        if attempt.evidence_key:
            text += f" [zip]({evidence(run_id, step.step_number, attempt)})"
        parts.append(text)
    return f"{head}, {'; '.join(parts)}" if parts else head


# -- index.html (SVG) --------------------------------------------------------------------------


def svg_timeline(timeline: Timeline, job_name: str) -> Markup:
    """A job's timeline as inline SVG: a label per group and node, a `<rect>` per run coloured
    by its status's class with a `<title>` tooltip, and a time axis. Empty when nothing ran."""
    if timeline.empty:
        return Markup("")
    t = timeline
    name = xml(job_name)
    lines = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{t.width}" '
        f'height="{t.height}" viewBox="0 0 {t.width} {t.height}" role="img" '
        f'aria-label="Timeline of the runs of {name}, one row per group and node">',
        f"<title>Runs of {name} per group and node over time</title>",
    ]
    for row in t.rows:
        tip = f"<title>{xml(row.full)}</title>" if row.label != row.full else ""
        lines.append(f'<text x="4" y="{row.y}">{tip}{xml(row.label)}</text>')
    lines.extend(
        f'<rect x="{b.x}" y="{b.y}" width="{b.width}" height="{t.bar_height}" '
        f'class="s-{xml_cached(b.status)}"><title>{xml(b.title)}</title></rect>'
        for b in t.bars
    )
    axis = t.axis_y
    lines.append(f'<line class="axis" x1="{t.left}" x2="{t.right}" y1="{axis}" y2="{axis}"/>')
    for tick in t.ticks:
        x, label = tick.x, xml(tick.label)
        lines.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{axis}" y2="{t.tick_y}"/>')
        lines.append(f'<text x="{x}" y="{t.label_y}" text-anchor="{tick.anchor}">{label}</text>')
    lines.append("</svg>")
    return Markup("\n".join(lines))  # noqa: S704 - every value escaped (numbers made by `layout`)


# -- junit.xml ---------------------------------------------------------------------------------


def junit_cases(job_name: str, view: InstanceView) -> Markup:
    """A `<testcase>` per run of `view`: a failure (reason, failed steps' output tails) for
    failed and timed-out runs, skipped for canceled and unfinished ones."""
    classname = xml_cached(job_name)
    short = xml(view.short_id)
    lines = []
    for run in view.runs:
        seconds = _seconds(run) or 0.0
        head = (
            f'    <testcase classname="{classname}" '
            f'name="{xml_cached(run.node_id)} (group {run.group_number}) instance {short}" '
            f'time="{seconds:.3f}"'
        )
        if run.status == "success":
            lines.append(head + "/>")
            continue
        if run.status in FAILED_RUN:
            message, text = failure(view, run)
            body = (
                f'      <failure message="{xml(message)}" type="{run.status}">{xml(text)}</failure>'
            )
        elif run.status == "canceled":
            body = f'      <skipped message="{xml(one_line(run.reason) or "canceled")}"/>'
        else:
            body = (
                f'      <skipped message="{run.status}: not finished when the report was written"/>'
            )
        lines.append(f"{head}>\n{body}\n    </testcase>")
    return Markup("\n".join(lines))  # noqa: S704 - every value escaped above


def failure(view: InstanceView, run: StoredRun) -> tuple[str, str]:
    """(message, text) of a failed run: its reason, and for each failed step its reason and
    output tail."""
    failed: Sequence[StepResult] = [
        s for s in view.steps.get(run.id, ()) if s.status in FAILED_STEP
    ]
    message = one_line(run.reason) or (
        f"step {failed[-1].step_number} {failed[-1].status}" if failed else f"run {run.status}"
    )
    parts = []
    for step in failed:
        name = view.step_name(step.step_number)
        title = f"step {step.step_number}" + (f" ({name})" if name else "")
        reason = one_line(step.reason)
        parts.append(f"{title}: {step.status}" + (f": {reason}" if reason else ""))
        tail = view.tails.get((run.id, step.step_number))
        if tail is None:
            continue
        for label, part in (("stderr", tail.stderr), ("stdout", tail.stdout)):
            if part is not None and not part.empty:
                more = " (earlier lines not shown)" if part.omitted else ""
                parts.append(f"--- {label}, last lines{more} ---\n{part.text}")
        if tail.note:
            parts.append(tail.note)
    return message, "\n".join(parts)
