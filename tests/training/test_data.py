"""Data building: manifests, the Asterisk loader, text sources, augmentation, the TTS builder."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data import augment, spoken
from training.data.build import main as cli_main
from training.data.corpora import build_asterisk, clean_asterisk_text, librispeech_utterances
from training.data.manifest import Utterance, read_manifest, write_manifest
from training.data.splits import is_dev_text, split_key, word_count
from training.data.text_sources import clean_fortune, sentence_stream
from training.data.tts import (
    DEV_SENTENCE_SHARE,
    TTS_SPLIT_SALT,
    audio_file_name,
    name_words,
    plan_names_corpus,
    plan_names_dev,
    plan_noisy_copies,
    plan_tts_corpus,
    render_items,
)
from training.data.voices import Voice

SR = 16_000
REPO_ROOT = Path(__file__).resolve().parents[2]


def _tone(seconds: float, sample_rate: int = SR, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wobble = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 + wobble).astype(np.float32)


def _write_fortunes(folder):
    folder.mkdir(exist_ok=True)
    (folder / "wisdom").write_text(
        "A friend is a present you give yourself.\n\t\t-- Robert Louis Stevenson\n%\n"
        "Everything takes longer than you think it will.\n%\n"
        "Write 10 lines of code a day.\n%\n"  # digits: rejected
        "The early bird gets the worm, but the second mouse gets the cheese.\n%\n",
        encoding="utf-8",
    )
    return folder


# --- manifests -------------------------------------------------------------------------------


def test_manifest_round_trip_keeps_fields_and_stores_relative_paths(tmp_path):
    audio = tmp_path / "audio" / "a.flac"
    audio.parent.mkdir()
    sf.write(audio, _tone(0.5), SR)
    utterances = [
        Utterance("a", audio, "Hello, Dr. Okafor.", 0.5, speaker="flite:slt", context="Weekly sync", hotwords=("Okafor",)),
        Utterance("b", audio, "Plain text.", 0.5),
    ]
    manifest = tmp_path / "manifests" / "train.jsonl"
    write_manifest(manifest, utterances)

    first = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])
    assert first["audio"] == "../audio/a.flac"
    assert read_manifest(manifest) == [
        Utterance("a", audio.resolve(), "Hello, Dr. Okafor.", 0.5, "flite:slt", "Weekly sync", ("Okafor",)),
        Utterance("b", audio.resolve(), "Plain text.", 0.5),
    ]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "a", "audio": "a.flac", "text": "hi", "duration_s": 1.0, "speeker": "x"}, "unknown key"),
        ({"id": "a", "audio": "a.flac", "text": "hi"}, "missing required"),
        ({"id": "a", "audio": "a.flac", "text": "hi", "duration_s": "1"}, "duration_s"),
        ({"id": "a", "audio": "a.flac", "text": "hi", "duration_s": 1.0, "hotwords": "Okafor"}, "hotwords"),
    ],
)
def test_manifest_rejects_bad_records_naming_the_line(tmp_path, record, message):
    manifest = tmp_path / "bad.jsonl"
    good = {"id": "z", "audio": "z.flac", "text": "fine", "duration_s": 1.0}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        read_manifest(manifest)
    assert "bad.jsonl:2" in str(error.value)


# --- real corpora ----------------------------------------------------------------------------


def test_clean_asterisk_text_spells_what_is_said_and_drops_the_rest():
    assert clean_asterisk_text("Press 1 to mute, or 8 to exit.") == "Press one to mute, or eight to exit."
    assert clean_asterisk_text("press * for help or # to exit") == "press star for help or pound to exit"
    assert clean_asterisk_text("IAX (note: does not say \"2\")") == "IAX"
    assert clean_asterisk_text("[this is a simple beep tone]") is None
    assert clean_asterisk_text("(10 seconds of silence)") is None
    assert clean_asterisk_text("dial extension 8500 now") is None  # "eight five hundred" or "eight thousand..."?
    assert clean_asterisk_text("at least a 28.8 kilobit modem") is None


def _fake_asterisk(root):
    """A tiny layout like Debian's: 8 kHz WAVs (some in folders) and a gzipped name: text list."""
    sounds = root / "sounds"
    lines = ["; Core Asterisk Sounds in English", ""]
    for i in range(40):
        text = f"Please hold the line while we connect call {spoken.cardinal(i)} for you."
        for copy in ("a", "b"):  # two recordings of each text must land in the same split
            lines.append(f"prompt-{i}{copy}: {text}")
    lines += ["digits/1: one", "beep: [this is a simple beep tone]", "missing-audio: Nobody recorded this."]
    names = [line.split(":")[0] for line in lines[2:] if line.split(":")[0] != "missing-audio"]
    names.append("no-transcript")
    for index, name in enumerate(names):
        path = sounds / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(0.4, 8000, 200 + index), 8000, subtype="PCM_16")
    transcripts = root / "core-sounds-en.txt.gz"
    with gzip.open(transcripts, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return sounds, transcripts


def test_asterisk_loader_splits_by_text_and_converts_to_16k(tmp_path):
    sounds, transcripts = _fake_asterisk(tmp_path)
    splits = build_asterisk(tmp_path / "out", sounds, transcripts, dev_fraction=0.3, min_dev_words=4)

    train_keys = {split_key(u.text) for u in splits.train}
    dev_keys = {split_key(u.text) for u in splits.dev}
    assert splits.dev and splits.train
    assert not train_keys & dev_keys
    assert all(word_count(u.text) >= 4 for u in splits.dev)
    assert len(splits.train) + len(splits.dev) == 81  # 80 prompts + digits/1
    assert dict(splits.skipped) == {
        "beep": "no speakable text or ambiguous number",
        "missing-audio": "no audio",
        "no-transcript": "no transcript",
    }
    assert [u.text for u in splits.train if u.id == "asterisk-digits-1"] == ["one"]
    assert read_manifest(tmp_path / "out" / "asterisk-dev.jsonl") == list(splits.dev)
    info = sf.info(splits.dev[0].audio)
    assert (info.samplerate, info.channels, info.format) == (SR, 1, "FLAC")
    assert splits.dev[0].duration_s == pytest.approx(0.4, abs=0.01)


def test_librispeech_loader_reads_transcripts_and_skips_missing_audio(tmp_path):
    chapter = tmp_path / "19" / "198"
    chapter.mkdir(parents=True)
    sf.write(chapter / "19-198-0000.flac", _tone(0.7), SR)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 NO AUDIO HERE\n")
    [utterance] = librispeech_utterances(tmp_path)
    assert (utterance.id, utterance.text, utterance.speaker) == ("19-198-0000", "NORTHANGER ABBEY", "19")
    assert utterance.duration_s == pytest.approx(0.7)


# --- text sources ----------------------------------------------------------------------------


def test_clean_fortune_strips_attribution_and_rejects_unspeakable_cookies():
    assert clean_fortune("A friend is a present you give\nyourself.\n\t\t-- R. L. Stevenson") == (
        "A friend is a present you give yourself."
    )
    assert clean_fortune("Write 10 lines a day, every day.") is None  # digits
    assert clean_fortune("Too short.") is None
    assert clean_fortune("Q: Why did it fail?\nA: Because it could.") is None
    assert clean_fortune(" ".join(["word"] * 31) + ".") is None


def test_sentence_stream_is_seeded_distinct_and_has_no_digits(tmp_path):
    fortunes = _write_fortunes(tmp_path / "fortunes")
    first = [s.text for s in _take(sentence_stream(7, 0.3, fortunes), 40)]
    again = [s.text for s in _take(sentence_stream(7, 0.3, fortunes), 40)]
    other = [s.text for s in _take(sentence_stream(8, 0.3, fortunes), 40)]
    assert first == again and first != other
    assert len({split_key(t) for t in first}) == 40
    assert not any(spoken.has_digit(t) for t in first)
    assert "Everything takes longer than you think it will." in first


def _take(stream, n):
    return [next(stream) for _ in range(n)]


# --- augmentation ----------------------------------------------------------------------------


@pytest.fixture
def speechlike():
    return _tone(1.5, seed=1)


def _measured_snr_db(clean, noisy):
    noise = noisy - clean
    return 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))


def test_noise_is_added_at_the_planned_snr(speechlike):
    for kind in ("white", "pink"):
        noisy = augment.add_noise(speechlike.astype(np.float64), augment.NoiseSpec(kind, 10.0, seed=3))
        assert _measured_snr_db(speechlike, noisy) == pytest.approx(10.0, abs=0.5)


def test_every_augmentation_keeps_length_and_finite_values(tmp_path, speechlike):
    talkers = []
    for i in range(augment.MIN_BABBLE_TALKERS):
        talkers.append(str(tmp_path / f"talker{i}.flac"))
        sf.write(talkers[-1], _tone(0.6 + 0.5 * i, freq=150 + 40 * i, seed=i), SR)
    room = augment.RoomSpec((5.0, 4.0, 2.8), 0.5, (1.0, 1.5, 1.6), (3.5, 2.5, 1.0))
    plans = [
        augment.AugmentPlan(reverb=room),
        augment.AugmentPlan(noise=augment.NoiseSpec("babble", 5.0, 1, tuple(talkers), (0.1, 0.5, 0.9, 0.3))),
        augment.AugmentPlan(telephone=True),
        *[augment.AugmentPlan(codec=codec, codec_compression=0.9) for codec in augment.CODECS],
        augment.AugmentPlan(peak_dbfs=-20.0),
    ]
    rng = random.Random(0)
    plans += [augment.plan_augmentation(rng, augment.STRONG, talkers) for _ in range(4)]
    for plan in plans:
        out = augment.apply_augmentation(speechlike, plan)
        assert out.shape == speechlike.shape, plan
        assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 0.99 + 1e-6, plan
        assert np.std(out) > 1e-4, plan
    volume = augment.apply_augmentation(speechlike, augment.AugmentPlan(peak_dbfs=-20.0))
    assert np.max(np.abs(volume)) == pytest.approx(0.1, rel=1e-3)
    # the MP3 encoder delay is compensated: the round trip lines up with the input
    mp3 = augment.codec_round_trip(speechlike.astype(np.float64), "mp3", 0.2)
    assert np.corrcoef(mp3, speechlike)[0, 1] > 0.95


def test_augmentation_plans_are_reproducible():
    def draw(seed):
        return [augment.plan_augmentation(random.Random(seed), augment.TRAIN, ["a", "b", "c"]) for _ in range(5)]
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


# --- the TTS builder -------------------------------------------------------------------------

FLITE = Voice("flite", "kal16", 105.0)
ESPEAK = Voice("espeak", "en-us", 50.0)
HELD_OUT = Voice("espeak", "en-us+m2", 50.0)


def _needs(*binaries):
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"TTS binary not installed: {', '.join(missing)} (Debian packages flite, espeak-ng)")


def _plan(tmp_path, seed):
    return plan_tts_corpus(seed, train_hours=1.0, dev_utterances=2, train_voices=(FLITE, ESPEAK),
                           dev_voices=(HELD_OUT,), fortune_share=0.3, fortune_dir=_write_fortunes(tmp_path / f"f{seed}"),
                           max_train_utterances=4)


def test_tts_plan_is_deterministic_and_keeps_dev_apart(tmp_path):
    plan, again, other = _plan(tmp_path, 0), _plan(tmp_path, 0), _plan(tmp_path, 1)
    assert plan == again
    assert [i.text for i in plan.train] != [i.text for i in other.train]
    assert len(plan.train) == 4 and len(plan.dev) == 2
    assert {i.voice for i in plan.train} <= {FLITE, ESPEAK} and {i.voice for i in plan.dev} == {HELD_OUT}
    assert not {split_key(i.text) for i in plan.train} & {split_key(i.text) for i in plan.dev}
    assert all(i.augment.is_clean for i in plan.dev)


def test_names_plan_is_all_names_and_keeps_the_avoided_names_out():
    def names(avoid, seed=0):
        return plan_names_corpus(seed, 1.0, avoid, train_voices=(FLITE, ESPEAK), max_utterances=40)

    free = names(())
    assert free == names(()) and free != names((), seed=1)
    assert len(free) == 40 and all(item.hotwords for item in free)
    assert {item.voice for item in free} <= {FLITE, ESPEAK}
    assert not any(is_dev_text(item.text, DEV_SENTENCE_SHARE, TTS_SPLIT_SALT) for item in free)

    avoid = [term for item in free[:10] for term in item.hotwords]
    kept = names(avoid)
    assert len(kept) == 40
    assert not name_words([term for item in kept for term in item.hotwords]) & name_words(avoid)
    assert [item.text for item in kept] != [item.text for item in free]

    trained = [term for item in kept for term in item.hotwords]
    dev = plan_names_dev(0, 20, trained, dev_voices=(HELD_OUT,))
    assert dev == plan_names_dev(0, 20, trained, dev_voices=(HELD_OUT,))
    assert len(dev) == 20 and all(item.hotwords and item.augment.is_clean for item in dev)
    assert {item.voice for item in dev} == {HELD_OUT}
    assert all(is_dev_text(item.text, DEV_SENTENCE_SHARE, TTS_SPLIT_SALT) for item in dev)
    assert not name_words([term for item in dev for term in item.hotwords]) & name_words(trained)
    # A company suffix is not a name: avoiding "Kisman Group" still allows other groups.
    assert name_words(["Kisman Group", "the World Bank"]) == {"kisman", "world", "bank"}


_PLAN_DIGEST = """
import hashlib, sys
from training.data.tts import plan_names_corpus, plan_tts_corpus
plan = plan_tts_corpus(3, train_hours=10.0, dev_utterances=60, babble_pool=list("abcdefgh"),
                       fortune_share=0.3, fortune_dir=sys.argv[1], max_train_utterances=240)
names = plan_names_corpus(3, 10.0, [t for item in plan.dev for t in item.hotwords], max_utterances=240)
print(hashlib.sha256(repr((plan, names)).encode()).hexdigest())
"""


def test_tts_plan_does_not_depend_on_the_process(tmp_path):
    """Resuming reuses files by plan digest, so a new process must plan exactly the same corpus."""
    fortunes = _write_fortunes(tmp_path / "fortunes")
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", _PLAN_DIGEST, str(fortunes)], env=env, cwd=REPO_ROOT,
                                capture_output=True, text=True, check=True)
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_tts_builder_renders_16k_mono_audio_and_resumes(tmp_path):
    _needs("flite", "espeak-ng")
    plan = _plan(tmp_path, 0)
    items = plan.train + plan.dev
    utterances = render_items(items, tmp_path / "audio", jobs=2)

    assert [u.text for u in utterances] == [i.text for i in items]
    assert [u.speaker for u in utterances] == [i.voice.key for i in items]
    for utterance in utterances:
        info = sf.info(utterance.audio)
        assert (info.samplerate, info.channels) == (SR, 1)
        assert info.duration == pytest.approx(utterance.duration_s, abs=1e-3)
        words = len(utterance.text.split())
        assert 0.15 * words < utterance.duration_s < 1.5 * words + 2.0, utterance
        audio, _ = sf.read(utterance.audio)
        assert np.all(np.isfinite(audio)) and np.sqrt(np.mean(audio**2)) > 1e-3

    mtimes = [u.audio.stat().st_mtime_ns for u in utterances]
    assert render_items(items, tmp_path / "audio", jobs=1) == utterances
    assert [u.audio.stat().st_mtime_ns for u in utterances] == mtimes  # reused, not re-rendered

    noisy = plan_noisy_copies(utterances[-3:], seed=0)
    noisy_utterances = render_items(noisy, tmp_path / "noisy", jobs=1)
    for clean, corrupted in zip(utterances[-3:], noisy_utterances):
        assert corrupted.text == clean.text
        assert corrupted.duration_s == pytest.approx(clean.duration_s, abs=1e-3)
        assert corrupted.audio.name == audio_file_name(noisy[noisy_utterances.index(corrupted)])


def test_build_cli_writes_all_manifests(tmp_path, capsys):
    _needs("flite", "espeak-ng")
    sounds, transcripts = _fake_asterisk(tmp_path)
    out = tmp_path / "data"
    code = cli_main(["build", "--out", str(out), "--tts-hours", "0.003", "--dev-tts-utterances", "2",
                     "--jobs", "1", "--asterisk-sounds", str(sounds), "--asterisk-transcripts", str(transcripts),
                     "--engines", "flite,espeak", "--fortunes", str(_write_fortunes(tmp_path / "fortunes")),
                     "--name-hours", "0.002", "--dev-names-utterances", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    for name in ("asterisk-train", "asterisk-dev", "tts-train", "dev-tts", "dev-noisy", "tts-names", "dev-names"):
        assert read_manifest(out / f"{name}.jsonl"), name
        assert f"{name}.jsonl" in printed
    noisy = read_manifest(out / "dev-noisy.jsonl")
    assert len(noisy) == 2 + len(read_manifest(out / "asterisk-dev.jsonl"))
    names = read_manifest(out / "tts-names.jsonl")
    assert all(u.hotwords for u in names)
    dev_names = name_words([t for u in read_manifest(out / "dev-tts.jsonl") for t in u.hotwords])
    assert not name_words([t for u in names for t in u.hotwords]) & dev_names
    held_out = read_manifest(out / "dev-names.jsonl")
    trained = name_words([t for m in ("tts-train", "tts-names") for u in read_manifest(out / f"{m}.jsonl") for t in u.hotwords])
    assert len(held_out) == 2 and all(u.hotwords for u in held_out)
    assert not name_words([t for u in held_out for t in u.hotwords]) & trained
    info = json.loads((out / "build.json").read_text())
    assert not set(info["train_voices"]) & set(info["held_out_voices"])
    assert {key.split(":")[0] for key in info["train_voices"] + info["held_out_voices"]} == {"flite", "espeak"}
