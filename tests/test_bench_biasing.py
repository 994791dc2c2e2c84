"""bench/biasing.py: the Le et al. 2021 metrics on hand-counted strings, the lists, and a smoke run on the tiny model."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.manifest import Utterance

_PATH = Path(__file__).resolve().parents[1] / "bench" / "biasing.py"
_spec = importlib.util.spec_from_file_location("bench_biasing", _PATH)
biasing = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = biasing  # dataclasses look their module up there
_spec.loader.exec_module(biasing)


def test_biased_substitution_and_biased_insertion_count_towards_b_wer():
    # we met olivia da mota and tino today: 4 biased words (olivia da mota, tino), 4 unbiased.
    # The hypothesis substitutes "da" and inserts a second "tino": both are biased-word errors.
    counts = biasing.score_utterance(
        "We met Olivia da Mota and Tino today.", "we met olivia de mota and tino tino today", ("Olivia da Mota", "Tino")
    )
    assert (counts.words, counts.errors) == (8, 2)
    assert (counts.biased_words, counts.biased_errors) == (4, 2)
    assert (counts.unbiased_words, counts.unbiased_errors) == (4, 0)
    assert counts.b_wer == 0.5 and counts.u_wer == 0.0 and counts.wer == 0.25
    # The multi-word term is missed ("de"), "tino" is found (once: the reference says it once).
    assert (counts.hotwords, counts.hotwords_found) == (2, 1)
    assert counts.recall == 0.5


def test_unbiased_insertion_counts_towards_u_wer():
    counts = biasing.score_utterance("Call Carla now.", "please call carlo now", ("Carla",))
    assert (counts.biased_words, counts.biased_errors) == (1, 1)  # carla -> carlo
    assert (counts.unbiased_words, counts.unbiased_errors) == (2, 1)  # "please" inserted
    assert (counts.hotwords, counts.hotwords_found) == (1, 0)


def test_recall_needs_whole_words_and_corpus_counts_add_up():
    utterances = [
        Utterance("a", Path("a.wav"), "We met Olivia da Mota and Tino today.", 1.0, hotwords=("Olivia da Mota", "Tino")),
        Utterance("b", Path("b.wav"), "Ask Tino.", 1.0, hotwords=("Tino",)),
    ]
    counts = biasing.biasing_counts(utterances, ["we met olivia da mota and tino today", "ask valentino"])
    # "valentino" does not contain the word "tino": a substitution, and the hotword is not found.
    assert (counts.hotwords, counts.hotwords_found) == (3, 2)
    assert (counts.biased_words, counts.biased_errors) == (5, 1)
    assert (counts.unbiased_words, counts.unbiased_errors) == (5, 0)
    assert counts.wer == pytest.approx(1 / 10)


def test_an_empty_hypothesis_deletes_everything_and_no_hotwords_leave_b_wer_undefined():
    counts = biasing.score_utterance("Ask Tino.", "", ("Tino",))
    assert counts.b_wer == 1.0 and counts.u_wer == 1.0 and counts.recall == 0.0
    assert math.isnan(biasing.score_utterance("Ask him.", "ask him", ()).b_wer)


def _utterance(uid: str, text: str, hotwords: tuple[str, ...], audio: Path = Path("x.wav")) -> Utterance:
    return Utterance(uid, audio, text, 1.0, hotwords=hotwords)


def test_lists_are_nested_shuffled_and_free_of_the_utterances_own_terms():
    utt = _utterance("u1", "Ask Tino about Neu-Ulm and Ravi.", ("Tino", "Neu-Ulm"))
    pool = biasing.gather_pool([[utt, _utterance("u2", "x", ("tino", "Ravi", *(f"Name{i}" for i in range(30))))]])
    assert pool.count("Tino") == 1 and "tino" not in pool  # case variants collapse
    lists = biasing.biasing_lists(utt, pool, [0, 5, 20], seed=3)
    assert sorted(lists[0]) == ["Neu-Ulm", "Tino"]
    for n in (5, 20):
        assert len(lists[n]) == 2 + n and {"Tino", "Neu-Ulm"} <= set(lists[n])
        assert "Ravi" not in lists[n]  # spoken in the reference, so not a distractor
    assert set(lists[5]) <= set(lists[20])
    assert lists == biasing.biasing_lists(utt, pool, [0, 5, 20], seed=3)
    assert biasing.biasing_lists(utt, pool, [5], seed=3)[5] == lists[5]  # independent of the other sizes asked for
    assert lists[20] != biasing.biasing_lists(utt, pool, [0, 5, 20], seed=4)[20]
    with pytest.raises(ValueError, match="--pool"):
        biasing.biasing_lists(utt, pool, [100], seed=3)


@pytest.fixture(scope="module")
def tiny_model():
    from engine.model.checkpoint import build_model
    from engine.model.runtime import Runtime
    from engine.model.tiny import tiny_config

    return build_model(tiny_config(), Runtime("cpu", "fp32"))


def _write_clip(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    samples = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(path, samples.astype(np.float32), 16000)
    return path


def test_smoke_run_on_the_tiny_model(tiny_model, tmp_path):
    from engine.correction import correct_hotwords
    from engine.decoding import DecodingOptions
    from engine.prompt import PromptContext
    from engine.transcribe import TranscribeOptions, Transcriber

    utterances = [
        _utterance("s1", "Ask Tino about it.", ("Tino",), _write_clip(tmp_path / "s1.wav", 1.2, 0)),
        _utterance("s2", "We met Olivia da Mota.", ("Olivia da Mota",), _write_clip(tmp_path / "s2.wav", 1.0, 1)),
    ]
    pool = tuple(f"Distractor {i}" for i in range(40)) + ("Tino", "Olivia da Mota")
    lists = {u.id: biasing.biasing_lists(u, pool, [0, 25], seed=0) for u in utterances}

    decoder = biasing.CachedDecoder(tiny_model)
    calls = []
    encode_frames = tiny_model.encode_frames
    tiny_model.encode_frames = lambda features: calls.append(1) or encode_frames(features)
    try:
        results = biasing.run_keyscribe(decoder, utterances, lists, biasing.keyscribe_conditions([0, 25], [1.0]))
    finally:
        del tiny_model.encode_frames
    assert len(calls) == len(utterances)  # the encoder runs once per utterance, not per condition
    assert [r.condition.name for r in results] == ["keyscribe none", "keyscribe true boost 1", "keyscribe true+25 boost 1"]
    for r in results:
        assert r.counts.words == 4 + 5 and r.counts.hotwords == 2 and len(r.hypotheses) == 2
    assert biasing.format_table(results).count("\n") == len(results)
    biasing.b_wer_ratio(results, 25, 1.0)  # defined for any results with a none row

    # --uncorrected: each list condition also as the LLM wrote it, from the same decoding.
    both = biasing.run_keyscribe(decoder, utterances, lists, biasing.keyscribe_conditions([25], [1.0]), uncorrected=True)
    assert [r.condition.name for r in both] == ["keyscribe none", "keyscribe true+25 boost 1 uncorrected", "keyscribe true+25 boost 1"]
    assert both[2].hypotheses == results[2].hypotheses
    for utt, written, fixed in zip(utterances, both[1].hypotheses, both[2].hypotheses, strict=True):
        encoded = decoder.encoded[utt.id]
        log_probs = tiny_model.ctc_log_probs(encoded.frames, encoded.lengths)[0]
        assert correct_hotwords(written, log_probs, lists[utt.id][25], tiny_model.ctc) == fixed

    # The cached single-chunk decode gives the Transcriber's text, also when the list is filtered by retrieval.
    transcriber = Transcriber(tiny_model, TranscribeOptions(segment=None, word_timestamps=False))
    # With these clips and seeds, s1's 26-term list goes through retrieval and s2's true list through the fallback.
    for utt, n in ((utterances[0], 25), (utterances[1], 0)):
        expected = transcriber.transcribe(utt.audio, PromptContext(hotwords=lists[utt.id][n])).text
        assert decoder.decode(utt, lists[utt.id][n], DecodingOptions()) == expected


def test_conditions_run_each_list_at_each_boost_and_none_once():
    names = [c.name for c in biasing.keyscribe_conditions([0, 100], [0.0, 1.5])]
    assert names == [
        "keyscribe none", "keyscribe true boost 0", "keyscribe true+100 boost 0", "keyscribe true boost 1.5", "keyscribe true+100 boost 1.5",
    ]
    assert biasing.Condition("peer", 100).name == "peer true+100 (prompt)"


def test_context_conditions_and_paragraphs(tiny_model, tmp_path):
    names = [c.name for c in biasing.keyscribe_conditions([0], [3.0], [1.0, 0.5])]
    assert names[2:] == [
        "keyscribe true context α 1", "keyscribe true context α 0.5", "keyscribe misleading context α 1", "keyscribe misleading context α 0.5",
    ]
    utt = _utterance("s2", "We met Olivia da Mota.", ("Olivia da Mota",), _write_clip(tmp_path / "s2.wav", 1.0, 1))
    pool = tuple(f"Distractor {i}" for i in range(40)) + ("Olivia da Mota",)
    true = biasing.meeting_paragraph(utt, pool, "true", seed=0)
    misleading = biasing.meeting_paragraph(utt, pool, "misleading", seed=0)
    assert "Olivia da Mota" in true and "Distractor" not in true
    assert "Olivia da Mota" not in misleading and misleading.count("Distractor") == 3  # as many names as a short list
    assert biasing.meeting_paragraph(utt, pool, "misleading", seed=0) == misleading  # the same from the same seed

    # Each context condition puts its paragraph in the prompt; α < 1 decodes jointly and still gives text.
    decoder = biasing.CachedDecoder(tiny_model)
    meetings = {utt.id: {"true": true, "misleading": misleading}}
    prompts = []
    generate = tiny_model.generate_from_frames
    tiny_model.generate_from_frames = lambda frames, lengths, contexts, options, *a: prompts.append((contexts[0].meeting, options.context_weight)) or generate(
        frames, lengths, contexts, options, *a
    )
    try:
        conditions = biasing.keyscribe_conditions([], [], [1.0, 0.5])
        results = biasing.run_keyscribe(decoder, [utt], {utt.id: {}}, conditions, meetings=meetings)
    finally:
        del tiny_model.generate_from_frames
    assert [r.condition.name for r in results][1:] == names[2:]
    # (a looping text is retried with the fallback options: same prompt, same α)
    assert [p for i, p in enumerate(prompts) if i == 0 or p != prompts[i - 1]] == [("", 1.0), (true, 1.0), (true, 0.5), (misleading, 1.0), (misleading, 0.5)]


def test_offset_and_limit_pick_from_the_utterances_with_hotwords(tmp_path):
    clip = tmp_path / "x.wav"
    utterances = [_utterance(f"u{i}", "Some words.", ("Tino",) if i % 2 else (), clip) for i in range(10)]
    assert [u.id for u in biasing.with_hotwords(utterances)] == ["u1", "u3", "u5", "u7", "u9"]
    assert [u.id for u in biasing.with_hotwords(utterances, offset=1, limit=2)] == ["u3", "u5"]
    assert [u.id for u in biasing.with_hotwords(utterances, offset=3)] == ["u7", "u9"]
