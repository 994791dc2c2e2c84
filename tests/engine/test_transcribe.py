"""The Transcriber's loop, with a fake model: order, callbacks, silence, cancel."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from engine.decoding import DecodingOptions
from engine.model.acllm import CharCTC, Hypothesis
from engine.model.config import DEFAULT_CTC_ALPHABET
from engine.model.encoder import LogMelFrontend
from engine.transcribe import Cancelled, Progress, TranscribeOptions, Transcriber


@dataclass(frozen=True)
class _Config:
    name: str = "fake"


class FakeModel:
    """Answers each chunk with its duration, so the test can check which audio went where."""

    config = _Config()
    ctc = CharCTC(DEFAULT_CTC_ALPHABET)

    def ctc_log_probs(self, frames, lengths):
        """Posteriors whose best path spells ``first_pass`` (a character frame, then a blank one), or
        uninformative ones (every label equally likely on every 20 ms frame) without a first pass."""
        size = self.ctc.vocab_size
        if not self.first_pass:
            return [np.full((int(d / 0.02), size), -np.log(size)) for d in frames.tolist()]
        peaked = np.full((2 * len(self.first_pass), size), 1e-3)
        for i, label in enumerate(self.ctc.encode(self.first_pass)):
            peaked[2 * i, label] = 1.0
            peaked[2 * i + 1, 0] = 1.0
        peaked /= peaked.sum(axis=1, keepdims=True)
        return [np.log(peaked)] * len(frames)

    def __init__(self, first_pass: str = ""):
        self.frontend = LogMelFrontend()
        self.calls = 0
        self.first_pass = first_pass
        self.contexts = []

    def encode_frames(self, features):
        return features.duration_s, features.mel_lengths  # stand-ins the fake reads back

    def generate_from_frames(self, frames, lengths, contexts, options, should_stop=None):
        self.calls += 1
        self.contexts += contexts
        self.options = getattr(self, "options", []) + [options]
        return [Hypothesis(text=self.answer(d, options), token_ids=(), avg_logprob=-0.1) for d in frames.tolist()]

    def answer(self, duration_s: float, options) -> str:
        return f"chunk of {duration_s:.1f} s"


class LoopingModel(FakeModel):
    """Loops on a phrase unless the decoding options forbid repeats, like an LLM stuck on the audio."""

    def answer(self, duration_s: float, options) -> str:
        return "fine words" if options.no_repeat_ngram_size else "the audio is: " * 30


def _tone_file(tmp_path, seconds: float, silent_from_s: float | None = None):
    t = np.arange(int(seconds * 16000)) / 16000
    samples = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    if silent_from_s is not None:
        samples[int(silent_from_s * 16000) :] = 0.0
    path = tmp_path / "audio.wav"
    sf.write(path, samples, 16000)
    return path


def test_segments_cover_the_file_in_order(tmp_path):
    path = _tone_file(tmp_path, 65.0)
    seen, progress = [], []
    transcript = Transcriber(FakeModel(), TranscribeOptions(segment=None, batch_size=2)).transcribe(
        path, on_segment=seen.append, progress_callback=progress.append
    )
    assert [s.start_s for s in transcript.segments] == [0.0, 30.0, 60.0]
    assert transcript.segments[-1].end_s == pytest.approx(65.0)
    assert list(transcript.segments) == seen
    assert transcript.text == "chunk of 30.0 s chunk of 30.0 s chunk of 5.0 s"
    assert [p.done_s for p in progress] == sorted(p.done_s for p in progress)
    assert progress[-1] == Progress(done_s=pytest.approx(65.0), total_s=pytest.approx(65.0))


def test_silent_windows_skip_the_model(tmp_path):
    path = _tone_file(tmp_path, 90.0, silent_from_s=30.0)
    model = FakeModel()
    transcript = Transcriber(model, TranscribeOptions(segment=None)).transcribe(path)
    assert model.calls == 1
    assert [s.text for s in transcript.segments] == ["chunk of 30.0 s", "", ""]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_cancel_stops_before_the_next_batch(tmp_path, batch_size):
    path = _tone_file(tmp_path, 120.0)  # four 30 s windows
    cancel = threading.Event()
    seen = []

    def on_segment(segment):
        seen.append(segment)
        cancel.set()

    with pytest.raises(Cancelled):
        Transcriber(FakeModel(), TranscribeOptions(segment=None, batch_size=batch_size)).transcribe(path, on_segment=on_segment, cancel=cancel)
    assert len(seen) == batch_size  # the batch that was decoding finishes; the next one never starts


def test_voice_activity_chunks_follow_the_speech(tmp_path):
    """Real prompts with pauses between them: chunks start at speech, skip long silence, keep file times."""
    import soxr

    from tests.conftest import ASTERISK_DIR

    names = ["agent-loginok", "agent-newlocation", "auth-thankyou", "conf-getpin", "vm-goodbye"]
    if not all((ASTERISK_DIR / f"{n}.wav").is_file() for n in names):
        pytest.skip("Debian package asterisk-core-sounds-en-wav is not installed")
    pieces, spans, t = [], [], 0.0
    for name in names:
        speech, rate = sf.read(ASTERISK_DIR / f"{name}.wav", dtype="float32")
        speech = soxr.resample(speech, rate, 16000).astype(np.float32)
        pieces += [speech, np.zeros(3 * 16000, dtype=np.float32)]  # 3 s of silence after each prompt
        spans.append((t, t + len(speech) / 16000))
        t += len(speech) / 16000 + 3.0
    path = tmp_path / "prompts.wav"
    sf.write(path, np.concatenate(pieces), 16000)
    transcript = Transcriber(FakeModel()).transcribe(path)
    assert len(transcript.segments) == len(names)  # one chunk per prompt: the 3 s pauses end chunks
    for segment, (start, end) in zip(transcript.segments, spans, strict=True):
        assert segment.start_s <= start + 0.25 and segment.end_s >= end - 0.05
        assert segment.end_s - segment.start_s < (end - start) + 1.0  # the silence is not decoded


def test_long_hotword_lists_are_filtered_per_chunk(tmp_path):
    from engine.prompt import PromptContext

    path = _tone_file(tmp_path, 10.0)
    hotwords = tuple(f"Distractor{i:03d}" for i in range(100)) + ("Raghunathan",)
    model = FakeModel(first_pass="doctor ragunathan joins us")
    Transcriber(model, TranscribeOptions(segment=None)).transcribe(path, PromptContext(meeting="sync", hotwords=hotwords))
    assert model.contexts[0].hotwords == ("Raghunathan",)
    assert model.contexts[0].meeting == "sync"
    short = FakeModel(first_pass="anything")
    Transcriber(short, TranscribeOptions(segment=None)).transcribe(path, PromptContext(hotwords=hotwords[:5]))
    assert short.contexts[0].hotwords == hotwords[:5]  # short lists go into the prompt whole


class MishearingModel(FakeModel):
    """Writes a common name where the first pass heard a listed one."""

    def answer(self, duration_s: float, options) -> str:
        return "Doctor Regan joins us."


def test_a_listed_term_the_ctc_hears_is_written_over_the_llms_guess(tmp_path):
    from dataclasses import replace

    from engine.prompt import PromptContext

    path = _tone_file(tmp_path, 10.0)
    context = PromptContext(hotwords=("Novartis", "Raghunathan"))
    fixed = Transcriber(MishearingModel(first_pass="doctor ragunathan joins us"), TranscribeOptions(segment=None)).transcribe(path, context)
    assert fixed.segments[0].text == "Doctor Raghunathan joins us."
    assert [w.text for w in fixed.segments[0].words] == ["Doctor", "Raghunathan", "joins", "us."]  # aligned after the fix
    off = TranscribeOptions(segment=None, decoding=replace(DecodingOptions(), hotword_correction=False))
    as_written = Transcriber(MishearingModel(first_pass="doctor ragunathan joins us"), off).transcribe(path, context)
    assert as_written.segments[0].text == "Doctor Regan joins us."
    no_list = Transcriber(MishearingModel(first_pass="doctor ragunathan joins us"), TranscribeOptions(segment=None)).transcribe(path)
    assert no_list.segments[0].text == "Doctor Regan joins us."


def test_the_automatic_hotword_boost_follows_the_whole_list(tmp_path):
    from engine.decoding import LONG_LIST_BOOST, SHORT_LIST_BOOST, SHORT_LIST_TERMS
    from engine.prompt import PromptContext

    assert DecodingOptions().boost_for(SHORT_LIST_TERMS) == SHORT_LIST_BOOST
    assert DecodingOptions().boost_for(SHORT_LIST_TERMS + 1) == LONG_LIST_BOOST < SHORT_LIST_BOOST
    assert DecodingOptions(hotword_boost=0.0).boost_for(3) == 0.0 and DecodingOptions(hotword_boost=2.0).boost_for(5000) == 2.0
    with pytest.raises(ValueError, match="hotword_boost"):
        DecodingOptions(hotword_boost=-1.0)
    path = _tone_file(tmp_path, 10.0)
    long_list = tuple(f"Distractor{i:04d}" for i in range(SHORT_LIST_TERMS)) + ("Raghunathan",)
    model = FakeModel(first_pass="doctor ragunathan joins us")
    Transcriber(model, TranscribeOptions(segment=None)).transcribe(path, PromptContext(hotwords=long_list))
    # The chunk's prompt holds one term, yet the bonus is the long list's.
    assert model.contexts[0].hotwords == ("Raghunathan",) and model.options[0].hotword_boost == LONG_LIST_BOOST
    short = FakeModel()
    Transcriber(short, TranscribeOptions(segment=None)).transcribe(path, PromptContext(hotwords=long_list[-5:]))
    assert short.options[0].hotword_boost == SHORT_LIST_BOOST


def test_looping_chunks_are_decoded_again_with_the_fallback(tmp_path):
    from engine.decoding import looks_degenerate

    assert looks_degenerate("the audio is: " * 30) and not looks_degenerate("Thanks for making time today.")
    path = _tone_file(tmp_path, 10.0)
    model = LoopingModel()
    transcript = Transcriber(model, TranscribeOptions(segment=None)).transcribe(path)
    assert transcript.text == "fine words"
    assert [o.no_repeat_ngram_size for o in model.options] == [0, 4]
    # The retry keeps the user's biasing: hotword boost and joint-decoding weight α.
    biased = LoopingModel()
    decoding = DecodingOptions(hotword_boost=1.5, context_weight=0.5)
    Transcriber(biased, TranscribeOptions(segment=None, decoding=decoding)).transcribe(path)
    assert [(o.hotword_boost, o.context_weight, o.no_repeat_ngram_size) for o in biased.options] == [(1.5, 0.5, 0), (1.5, 0.5, 4)]
    plain = LoopingModel()
    stuck = Transcriber(plain, TranscribeOptions(segment=None, fallback=None)).transcribe(path)
    assert looks_degenerate(stuck.text) and len(plain.options) == 1


def test_options_are_validated():
    with pytest.raises(ValueError, match="window_s"):
        TranscribeOptions(window_s=45.0)
    with pytest.raises(ValueError, match="batch_size"):
        TranscribeOptions(batch_size=0)


def test_history_carries_the_transcript_so_far(tmp_path):
    path = _tone_file(tmp_path, 65.0)
    model = FakeModel()
    Transcriber(model, TranscribeOptions(segment=None, history=True)).transcribe(path)
    assert [c.history for c in model.contexts] == ["", "chunk of 30.0 s", "chunk of 30.0 s chunk of 30.0 s"]
    model = FakeModel()
    Transcriber(model, TranscribeOptions(segment=None, history=False)).transcribe(path)
    assert [c.history for c in model.contexts] == ["", "", ""]


def test_loop_retry_drops_the_history(tmp_path):
    path = _tone_file(tmp_path, 40.0)
    model = LoopingModel()
    Transcriber(model, TranscribeOptions(segment=None, history=True)).transcribe(path)
    # second chunk: first try with history, the retry without
    assert model.contexts[2].history and model.contexts[3].history == ""


class CancelledWhileDecoding(FakeModel):
    """The user presses cancel while the second chunk is being decoded."""

    def __init__(self, cancel: threading.Event):
        super().__init__()
        self.cancel = cancel
        self.stopped_early = False

    def generate_from_frames(self, frames, lengths, contexts, options, should_stop=None):
        if self.calls == 1:
            self.cancel.set()
            self.stopped_early = should_stop is not None and should_stop()
        return super().generate_from_frames(frames, lengths, contexts, options, should_stop)


def test_cancel_reaches_into_a_running_decode(tmp_path):
    path = _tone_file(tmp_path, 65.0)
    cancel = threading.Event()
    model = CancelledWhileDecoding(cancel)
    seen = []
    with pytest.raises(Cancelled):
        Transcriber(model, TranscribeOptions(segment=None, batch_size=1)).transcribe(path, on_segment=seen.append, cancel=cancel)
    assert model.stopped_early  # the decoder was told to stop mid-chunk
    assert [s.text for s in seen] == ["chunk of 30.0 s"]  # the interrupted chunk's partial text is not kept


def test_segments_carry_word_times_inside_them(tmp_path):
    path = _tone_file(tmp_path, 65.0)
    transcript = Transcriber(FakeModel(), TranscribeOptions(segment=None)).transcribe(path)
    for segment in transcript.segments:
        assert [w.text for w in segment.words] == segment.text.split()
        assert all(segment.start_s <= w.start_s <= w.end_s <= segment.end_s for w in segment.words)
    no_words = Transcriber(FakeModel(), TranscribeOptions(segment=None, word_timestamps=False)).transcribe(path)
    assert all(s.words == () for s in no_words.segments)


def test_the_audio_reader_thread_hands_over_items_and_errors_in_order():
    from engine.errors import AudioError
    from engine.transcribe import _prefetched

    def source():
        yield from range(5)
        raise AudioError("the file ends in the middle of a frame")

    received = []
    with pytest.raises(AudioError, match="middle of a frame"):
        for item in _prefetched(source(), depth=2):
            received.append(item)
    assert received == [0, 1, 2, 3, 4]  # everything read before the error still arrives


def test_a_cancel_stops_the_audio_reader_and_closes_the_file(tmp_path, monkeypatch):
    from engine.segment import Chunk

    produced, closed = [], threading.Event()

    def endless_chunks(self, path):
        try:
            while True:
                produced.append(len(produced))
                yield Chunk(start_s=float(len(produced) - 1), samples=np.full(16000, 0.1, dtype=np.float32))
        finally:
            closed.set()

    monkeypatch.setattr(Transcriber, "_chunks", endless_chunks)
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        Transcriber(FakeModel(), TranscribeOptions(batch_size=2)).transcribe(
            _tone_file(tmp_path, 1.0), on_segment=lambda segment: cancel.set(), cancel=cancel
        )
    assert closed.is_set()  # the source generator was closed: its audio file with it
    assert not [t for t in threading.enumerate() if t.name == "keyscribe-audio-reader"]
    assert len(produced) <= 2 + 2 * 2 + 2  # one batch decoded, the reader at most its queue (2 batches) and one item ahead
