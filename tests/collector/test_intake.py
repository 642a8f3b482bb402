"""collector/intake.py: an intake cut into write batches, in arrival order or by screen."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.intake import Intake, split, split_by_screen

# An intake as the ingest loop fills it: telemetry documents (screen, lines) and, between
# them, lines of no document (events); forecasts and ticket points come at the end.
_items = st.lists(
    st.one_of(st.tuples(st.sampled_from("abcd"), st.integers(1, 5)), st.just(None)),
    min_size=1, max_size=60,
)


def _intake(items: list[tuple[str, int] | None], tail: int) -> Intake:
    intake = Intake()
    seqs: dict[str, int] = {}
    for k, item in enumerate(items):
        intake.msgs.append(("msg", k))  # type: ignore[arg-type]  # any object will do
        if item is None:
            intake.lines.append(f"event {k}")
            continue
        screen, n = item
        seq = seqs[screen] = seqs.get(screen, 0) + 1
        doc: dict[str, Any] = {"site": "s", "screen": screen, "agent": f"pc-{screen}",
                               "seq": seq}
        intake.add_doc(doc, [f"{screen} {seq} {j}" for j in range(n)])
    intake.lines += [f"tail {j}" for j in range(tail)]
    return intake


def _cuts(intake: Intake, batch_size: int, batches: int) -> list[tuple[int, int, int]]:
    """Cuts where `_take_backlog` would record them: after each batch_size lines."""
    cuts, want = [], batch_size
    for i, (_, end) in enumerate(intake.spans):
        if end >= want and len(cuts) < batches - 1:
            cuts.append((i + 1, i + 1, end))
            want = end + batch_size
    return cuts


@settings(max_examples=300, deadline=None)
@given(_items, st.integers(0, 3), st.integers(1, 12), st.integers(1, 8))
def test_by_screen_keeps_every_line_and_each_screens_order(
    items: list[tuple[str, int] | None], tail: int, batch_size: int, intake_batches: int
) -> None:
    intake = _intake(items, tail)
    cuts = _cuts(intake, batch_size, intake_batches)
    batches = split_by_screen(intake, cuts, batch_size)
    written = [line for b in batches for line in b.lines]
    assert sorted(written) == sorted(intake.lines)  # every line, once
    doc_lines = [ln for ln in written if not ln.startswith(("event", "tail"))]
    screens = [ln.split()[0] for ln in doc_lines]
    # Screen by screen (a screen's lines never resume after another's), each in order.
    runs = [s for k, s in enumerate(screens) if k == 0 or screens[k - 1] != s]
    assert len(runs) == len(set(runs)) or not cuts
    for screen in set(screens):
        mine = [ln for ln in doc_lines if ln.startswith(screen + " ")]
        assert mine == [ln for ln in intake.lines if ln.startswith(screen + " ")]
    # No more batches than the cuts give, and the messages all with the last one.
    assert len(batches) <= len(cuts) + 1
    assert batches[-1].msgs == intake.msgs
    assert all(b.msgs == [] for b in batches[:-1])
    assert all(len(b.lines) >= batch_size for b in batches[:-1])
    # Each batch records the seqs of exactly the documents whose lines it carries.
    for b in batches:
        carried = {tuple(ln.split()[:2]) for ln in b.lines if ln[0] in "abcd"}
        assert {(screen, str(seq)) for _, screen, _, seq in b.seqs} == carried


def test_a_live_intake_is_one_batch_either_way() -> None:
    intake = _intake([("a", 2), ("b", 2), None, ("a", 1)], tail=1)
    for batches in (split(intake, []), split_by_screen(intake, [], 3)):
        assert len(batches) == 1
        assert batches[0].lines is intake.lines and batches[0].msgs is intake.msgs
        assert [s[1] for s in batches[0].seqs] == ["a", "b", "a"]


def test_in_arrival_order_the_screens_interleave() -> None:
    """The control: `split` keeps the arrival order, so a poll-major backlog mixes the
    screens in every batch (what `split_by_screen` changes)."""
    intake = _intake([(s, 2) for _ in range(4) for s in "abc"], tail=0)
    cuts = _cuts(intake, 6, 4)
    assert len(cuts) == 3
    by_arrival = split(intake, cuts)
    assert all({ln[0] for ln in b.lines} == set("abc") for b in by_arrival)
    assert [len(b.msgs) for b in by_arrival] == [3, 3, 3, 3]
    by_screen = split_by_screen(intake, cuts, 6)
    assert [{ln[0] for ln in b.lines} for b in by_screen] == [{"a"}, {"a", "b"}, {"b", "c"},
                                                              {"c"}]
