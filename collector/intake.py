"""What the ingest loop has taken, and how it becomes write batches; pure, no I/O.

An intake holds messages, their validated documents and the encoded lines, in the order
taken. `split` cuts it into write batches where the loop recorded (`cuts`), in arrival
order. `split_by_screen` lays a backlog intake out screen by screen instead: both
servers take the same lines 1.25-1.6 x faster when each request holds many polls of few
screens rather than one or two polls of all of them (docs/hot-path.md, "Requests by
screen"). Each screen's own points keep their order either way, and the messages are
acknowledged in arrival order: MQTT wants PUBACKs in the order the PUBLISHes came, and a
screen-ordered batch holds messages from the whole intake, so all of them go with the
last batch, which the pool finishes after every batch before it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from collector.delivery import StreamSeq
from collector.ingest.mqtt_consumer import Inbound
from collector.pipeline import Batch

Cut = tuple[int, int, int]  # (messages, documents, lines) taken when a write batch closed


@dataclasses.dataclass
class Intake:
    """What the ingest thread has taken toward its next writes, in the order taken. While
    `submit` waits for room, the next intake starts filling (`_prefetch`), after
    everything submitted. Its first `judged` docs are already judged. `spans[i]` is where
    `docs[i]`'s lines are in `lines` (start, end); other lines (events, forecasts,
    tickets) lie between and after them."""

    msgs: list[Inbound] = dataclasses.field(default_factory=list)
    docs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    lines: list[str] = dataclasses.field(default_factory=list)
    spans: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    judged: int = 0
    taken_s: float = 0.0  # when its first message was taken (the flush deadline)
    judge_at: float | None = None  # when its unjudged docs are due (detect_within_ms)
    stop: bool = False  # the stop marker was taken

    def taken(self, now: float, judge_s: float) -> None:
        """Starts the judging clock at the first unjudged snapshot taken at `now`."""
        if self.judge_at is None and len(self.docs) > self.judged:
            self.judge_at = now + judge_s

    def add_doc(self, doc: dict[str, Any], lines: list[str]) -> None:
        """A telemetry document and its lines."""
        start = len(self.lines)
        self.docs.append(doc)
        self.lines += lines
        self.spans.append((start, len(self.lines)))

    def clear_docs(self) -> None:
        """The documents are done once judged and encoded (2,500 objects each)."""
        self.docs.clear()
        self.spans.clear()


def _keys(part: list[dict[str, Any]]) -> list[StreamSeq]:
    return [(d["site"], d["screen"], d["agent"], d["seq"]) for d in part]


def split(intake: Intake, cuts: list[Cut]) -> list[Batch]:
    """The intake as write batches, cut where `_take_backlog` recorded; what came after
    the last cut (the detection's and tickets' own points too) goes with the last one.
    A batch keeps each document's stream key and seq only (delivery records them once
    stored)."""
    msgs, docs, lines = intake.msgs, intake.docs, intake.lines
    if not cuts:  # a live intake: one batch, the lists as they are (no copies)
        return [Batch(msgs, _keys(docs), lines)]
    ends = [*cuts, (len(msgs), len(docs), len(lines))]
    out, start = [], (0, 0, 0)
    for end in ends:
        out.append(Batch(msgs[start[0]:end[0]], _keys(docs[start[1]:end[1]]),
                         lines[start[2]:end[2]]))
        start = end
    return out


def split_by_screen(intake: Intake, cuts: list[Cut], batch_size: int) -> list[Batch]:
    """`split`, with a backlog intake's documents laid out screen by screen (each
    screen's in the order taken) and cut into batches of at least `batch_size` lines at
    document boundaries, as many as `split` would give at most. Lines of no document go
    with the last batch, and so do all the messages (acks in arrival order)."""
    if not cuts or not intake.docs:
        return split(intake, cuts)
    docs, lines, spans = intake.docs, intake.lines, intake.spans
    order = sorted(range(len(docs)), key=lambda i: (docs[i]["site"], docs[i]["screen"]))
    out: list[Batch] = []
    part: list[str] = []
    part_docs: list[dict[str, Any]] = []
    for i in order:
        a, b = spans[i]
        part += lines[a:b]
        part_docs.append(docs[i])
        if len(part) >= batch_size and len(out) < len(cuts):
            out.append(Batch([], _keys(part_docs), part))
            part, part_docs = [], []
    covered = 0  # the lines of no document: the gaps between the spans, and the tail
    for a, b in spans:
        part += lines[covered:a]
        covered = b
    part += lines[covered:]
    out.append(Batch(intake.msgs, _keys(part_docs), part))
    return out
