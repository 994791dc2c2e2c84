"""Reviewing a transcript: the segment model, editing in place, find, playback, hotword marks, export."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from app.review_panel import ReviewPanel
from app.segments import SegmentsModel, hotword_spans, marked_html
from engine.transcript import Segment, Transcript, Word
from tests.app.conftest import write_tone

SEGMENTS = (
    Segment(0.0, 2.5, "Thanks for making time today."),
    Segment(2.5, 6.0, "How did the project in Rotterdam begin?", words=(Word(2.5, 3.0, "How"),), avg_logprob=-0.2),
    Segment(6.0, 9.0, "We measured air quality near the harbour."),
    Segment(9.0, 12.0, "Rotterdammers noticed the harbour first."),
)
HOTWORDS = ("Rotterdam", "air quality", "harbour")


@pytest.fixture
def transcript() -> Transcript:
    return Transcript(segments=SEGMENTS, duration_s=12.0, model="fake")


def test_segment_model_passes_the_model_tester(qtmodeltester, transcript):
    model = SegmentsModel()
    qtmodeltester.check(model)
    model.set_transcript(transcript, HOTWORDS)
    qtmodeltester.check(model)
    model.append_segment(Segment(12.0, 13.0, "A live one."))
    assert model.rowCount() == 5
    qtmodeltester.check(model)


def test_edit_in_place_goes_through_with_segment_text(qtbot, transcript):
    model = SegmentsModel()
    model.set_transcript(transcript, HOTWORDS)
    with qtbot.waitSignal(model.transcriptEdited) as blocker:
        assert model.setData(model.index(1), "How did the  project\nin Rotterdam start?")
    edited = blocker.args[0]
    assert edited.segments[1].text == "How did the project in Rotterdam start?"  # one line, single spaces
    assert edited.segments[1].words == () and edited.segments[1].avg_logprob is None
    assert edited.segments[0] == transcript.segments[0] and edited.segments[2:] == transcript.segments[2:]
    assert edited.text == " ".join(s.text for s in edited.segments)
    assert model.index(1).data() == "How did the project in Rotterdam start?"
    assert not model.setData(model.index(1), "How did the project in Rotterdam start?")  # unchanged: no edit


def test_hotword_hits_are_marked_whole_words_only(transcript):
    text = SEGMENTS[3].text
    assert [text[a:b] for a, b in hotword_spans(text, HOTWORDS)] == ["harbour"]  # not "Rotterdam" inside "Rotterdammers"
    text = SEGMENTS[2].text
    assert [text[a:b] for a, b in hotword_spans(text, HOTWORDS)] == ["air quality", "harbour"]
    html = marked_html("a <b> & Rotterdam", hotword_spans("a <b> & Rotterdam", HOTWORDS), [])
    assert "&lt;b&gt; &amp; " in html and "font-weight:600" in html and ">Rotterdam</span>" in html
    model = SegmentsModel()
    model.set_transcript(transcript, HOTWORDS)
    assert model.index(2).data(SegmentsModel.HotwordHitsRole) == ["air quality", "harbour"]
    assert model.index(0).data(SegmentsModel.HotwordHitsRole) == []
    assert "font-weight:600" in model.index(1).data(SegmentsModel.HtmlRole)


def test_find_highlights_and_cycles_through_matches(qtbot, transcript):
    panel = ReviewPanel()
    qtbot.addWidget(panel)
    panel.show_job(None, transcript, HOTWORDS)
    panel.find_edit.setText("harbour")
    assert panel.model.matching_rows() == [2, 3]
    assert "background-color" in panel.model.index(3).data(SegmentsModel.HtmlRole)
    assert "background-color" not in panel.model.index(0).data(SegmentsModel.HtmlRole)
    assert panel.find_label.text() == "2 segments"
    assert panel.find_next() == 2
    assert panel.find_next() == 3
    assert panel.find_next() == 2  # wraps
    assert panel.find_next(backwards=True) == 3
    assert panel.find_label.text() == "2 of 2"
    panel.find_edit.setText("zebra")
    assert panel.find_label.text() == "No matches" and panel.find_next() == -1


def test_double_click_edits_a_segment_and_enter_saves(qtbot, transcript):
    panel = ReviewPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 500)
    panel.show()
    panel.show_job(None, transcript, HOTWORDS)
    qtbot.waitExposed(panel)
    index = panel.model.index(0)
    rect = panel.view.visualRect(index)
    assert rect.height() > 20  # the delegate measured the wrapped text
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a real double-click starts with a press
    qtbot.mouseDClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    editors = [w for w in panel.view.viewport().findChildren(QPlainTextEdit) if w.objectName() == "segmentEditor" and w.isVisible()]
    assert len(editors) == 1
    editor = editors[0]
    assert editor.toPlainText() == "Thanks for making time today."
    editor.setPlainText("Thank you for making time today.")
    with qtbot.waitSignal(panel.model.transcriptEdited):
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert panel.model.transcript.segments[0].text == "Thank you for making time today."


def test_click_plays_from_the_segment_and_follows_playback(qtbot, transcript, tmp_path):
    panel = ReviewPanel()
    qtbot.addWidget(panel)
    if not panel.player.available:
        pytest.skip(panel.player.unavailable_reason)
    panel.resize(700, 500)
    panel.show()
    audio = write_tone(tmp_path / "a.wav", 12.0)
    panel.show_job(audio, transcript, HOTWORDS)
    qtbot.waitUntil(lambda: panel.player.duration_s > 11, timeout=5000)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=panel.view.visualRect(panel.model.index(2)).center())
    assert panel.model.current_row == 2
    assert panel.model.index(2).data(SegmentsModel.IsCurrentRole) is True
    qtbot.waitUntil(lambda: panel.player.playing, timeout=3000)
    assert 6.0 <= panel.player.position_s < 8.0
    panel.back_action.trigger()  # skip back 5 s
    qtbot.waitUntil(lambda: panel.model.current_row in (0, 1), timeout=3000)
    assert panel.player.position_s < 4.0
    panel.faster_action.trigger()
    assert panel.player.rate == pytest.approx(1.25) and panel.speed_combo.currentText() == "1.25×"
    panel.slower_action.trigger()
    panel.slower_action.trigger()
    assert panel.player.rate == pytest.approx(0.75)
    panel.play_action.trigger()
    qtbot.waitUntil(lambda: not panel.player.playing, timeout=3000)


def test_exports_are_written_and_read_back(qtbot, make_window, tone, tmp_path):
    import docx
    import srt
    import webvtt

    window = make_window()
    job_id = window.add_files([tone])[0]
    with qtbot.waitSignal(window.queue.jobFinished, timeout=5000):
        window.transcribe(job_id)
    window.review.model.setData(window.review.model.index(1), "A corrected second segment.")
    job = window.jobs.job(job_id)
    assert job.edited and job.transcript.segments[1].text == "A corrected second segment."
    out = tmp_path / "out"
    out.mkdir()
    written = {fmt: window.export_job(job_id, out / f"tone.{fmt}", fmt) for fmt in ("txt", "srt", "vtt", "json", "docx")}

    assert written["txt"].read_text(encoding="utf-8").splitlines()[1] == "A corrected second segment."
    subtitles = list(srt.parse(written["srt"].read_text(encoding="utf-8")))
    assert [s.content for s in subtitles][1] == "A corrected second segment."
    assert subtitles[0].start.total_seconds() == 0.0 and subtitles[-1].end.total_seconds() == pytest.approx(3.0)
    assert [c.text for c in webvtt.read(str(written["vtt"]))][1] == "A corrected second segment."
    assert Transcript.from_dict(json.loads(written["json"].read_text(encoding="utf-8"))) == job.transcript
    paragraphs = [p.text for p in docx.Document(str(written["docx"])).paragraphs]
    assert any(p.endswith("A corrected second segment.") for p in paragraphs)
    assert paragraphs[0] == "tone"  # the title


def test_export_before_transcribing_says_what_to_do(make_window, tone, tmp_path):
    window = make_window()
    job_id = window.add_files([tone])[0]
    with pytest.raises(ValueError, match="transcribe it first"):
        window.export_job(job_id, tmp_path / "x.txt", "txt")
    assert not window.export_button.isEnabled()
