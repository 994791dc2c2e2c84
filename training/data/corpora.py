"""Loaders that turn corpora already on disk into manifests.

- LibriSpeech layout: ``ROOT/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  with ``<id> <TEXT>`` lines and ``<id>.flac`` beside it.
- AISHELL layout: ``ROOT/transcript/aishell_transcript_v0.8.txt`` with
  ``<id> <space-separated words>`` lines and ``ROOT/wav/<split>/S<nnnn>/<id>.wav``.
- Asterisk prompts (Debian ``asterisk-core-sounds-en-wav``): one real speaker
  reading IVR prompts, 8 kHz WAV, transcripts in ``core-sounds-en.txt.gz`` as
  ``name: transcript`` lines (names may contain folders: ``digits/1``). These
  are converted to 16 kHz FLAC and split into train/dev by text.
"""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import spoken
from .audio_io import duration_s, read_mono_16k, write_flac
from .manifest import Utterance, write_manifest
from .splits import is_dev_text, word_count

ASTERISK_SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_SPEAKER = "asterisk-allison"
ASTERISK_SPLIT_SALT = "keyscribe-asterisk"


# --- LibriSpeech and AISHELL -------------------------------------------------------------


def librispeech_utterances(root: str | os.PathLike) -> list[Utterance]:
    """All transcribed utterances under a LibriSpeech-style folder (one subset, e.g. train-clean-100)."""
    root = Path(root)
    transcript_files = sorted(root.glob("*/*/*.trans.txt"))
    if not transcript_files:
        raise FileNotFoundError(f"No */*/*.trans.txt files under {root}; point at a LibriSpeech subset folder.")
    utterances = []
    for transcript_file in transcript_files:
        speaker = transcript_file.parent.parent.name
        for line in transcript_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            utterance_id, _, text = line.strip().partition(" ")
            audio = transcript_file.parent / f"{utterance_id}.flac"
            if not audio.is_file() or not text.strip():
                continue  # a transcript line without audio (or vice versa) is unusable
            utterances.append(Utterance(utterance_id, audio.resolve(), text.strip(), duration_s(audio), speaker=speaker))
    return utterances


AISHELL_TRANSCRIPT = Path("transcript/aishell_transcript_v0.8.txt")


def aishell_utterances(root: str | os.PathLike, split: str) -> list[Utterance]:
    """Utterances of one AISHELL split (train/dev/test); words are joined without spaces."""
    root = Path(root)
    transcript_path = root / AISHELL_TRANSCRIPT
    if not transcript_path.is_file():
        raise FileNotFoundError(f"{transcript_path} not found; point at the AISHELL folder that holds transcript/ and wav/.")
    texts = {}
    for line in transcript_path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            texts[parts[0]] = "".join(parts[1:])
    wavs = sorted((root / "wav" / split).glob("S*/*.wav"))
    if not wavs:
        raise FileNotFoundError(f"No wav/{split}/S*/*.wav files under {root}.")
    return [
        Utterance(wav.stem, wav.resolve(), texts[wav.stem], duration_s(wav), speaker=wav.parent.name)
        for wav in wavs
        if wav.stem in texts
    ]


# --- Asterisk prompts --------------------------------------------------------------------


def read_asterisk_transcripts(path: str | os.PathLike) -> dict[str, str]:
    """``name: transcript`` lines (gzip or plain text) → {name: raw transcript}; ``;`` lines are comments."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        transcripts = {}
        for line in lines:
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            name, sep, text = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                transcripts[name.strip()] = text.strip()
    return transcripts


# "[ascending tones]", "(10 seconds of silence)", "<beep ascending>", "(note: ...)".
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_SYMBOL_WORDS = {"*": "star", "#": "pound"}


def clean_asterisk_text(raw: str) -> str | None:
    """The words actually spoken in a prompt, or None if there are none or their reading is uncertain.

    Annotations are dropped, "*" and "#" become "star" and "pound" (what the
    prompts say), integers up to 99 are spelled out. A number that could be read
    several ways ("1234", "28.8", "3D") makes the prompt unusable as a label.
    """
    text = _ANNOTATION.sub(" ", raw)
    text = re.sub(r"(?<!\S)([*#])(?!\S)", lambda m: _SYMBOL_WORDS[m.group(1)], text)
    text = spoken.spell_small_integers(text)
    text = " ".join(text.split()).strip(" ,;")
    if not any(ch.isalpha() for ch in text) or spoken.has_digit(text) or re.search(r"[*#@$=+/\[\]<>]", text):
        return None
    return text


@dataclass(frozen=True)
class AsteriskSplits:
    train: tuple[Utterance, ...]
    dev: tuple[Utterance, ...]
    skipped: tuple[tuple[str, str], ...]  # (prompt name, reason)

    def skip_counts(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped))


def split_asterisk_prompt(text: str, dev_share_of_candidates: float, min_dev_words: int) -> str:
    """ "dev" or "train". Only prompts of ≥ min_dev_words words are dev candidates; among
    those the text's hash decides, so every recording of one text goes to the same split."""
    if word_count(text) >= min_dev_words and is_dev_text(text, dev_share_of_candidates, ASTERISK_SPLIT_SALT):
        return "dev"
    return "train"


def build_asterisk(
    out_dir: str | os.PathLike,
    sounds_dir: str | os.PathLike = ASTERISK_SOUNDS_DIR,
    transcripts_path: str | os.PathLike = ASTERISK_TRANSCRIPTS,
    dev_fraction: float = 0.1,
    min_dev_words: int = 4,
) -> AsteriskSplits:
    """Converts the prompts to 16 kHz FLAC under out_dir/audio/asterisk and writes
    out_dir/asterisk-train.jsonl and out_dir/asterisk-dev.jsonl. Existing FLACs are reused.

    dev_fraction is the share of all usable prompts that should land in dev;
    since short prompts cannot be dev, the hash threshold for the longer ones is
    raised to match.
    """
    out_dir, sounds_dir, transcripts_path = Path(out_dir), Path(sounds_dir), Path(transcripts_path)
    if not transcripts_path.is_file() or not sounds_dir.is_dir():
        raise FileNotFoundError(
            f"Asterisk prompts not found ({transcripts_path}, {sounds_dir}); "
            "install the Debian packages asterisk-core-sounds-en and asterisk-core-sounds-en-wav."
        )
    transcripts = read_asterisk_transcripts(transcripts_path)
    wav_names = {p.relative_to(sounds_dir).with_suffix("").as_posix() for p in sounds_dir.rglob("*.wav")}
    skipped: list[tuple[str, str]] = [(name, "no transcript") for name in sorted(wav_names - set(transcripts))]
    prompts: list[tuple[str, str]] = []  # (name, cleaned text)
    for name in sorted(transcripts):
        text = clean_asterisk_text(transcripts[name])
        if name not in wav_names:
            skipped.append((name, "no audio"))
        elif text is None:
            skipped.append((name, "no speakable text or ambiguous number"))
        else:
            prompts.append((name, text))
    candidates = sum(word_count(text) >= min_dev_words for _, text in prompts)
    dev_share = min(1.0, dev_fraction * len(prompts) / candidates) if candidates else 0.0
    splits: dict[str, list[Utterance]] = {"train": [], "dev": []}
    for name, text in prompts:
        flac = (out_dir / "audio" / "asterisk" / f"{name.replace('/', '__')}.flac").resolve()
        duration = duration_s(flac) if flac.is_file() else write_flac(flac, read_mono_16k(sounds_dir / f"{name}.wav"))
        utterance = Utterance(f"asterisk-{name.replace('/', '-')}", flac, text, duration, speaker=ASTERISK_SPEAKER)
        splits[split_asterisk_prompt(text, dev_share, min_dev_words)].append(utterance)
    write_manifest(out_dir / "asterisk-train.jsonl", splits["train"])
    write_manifest(out_dir / "asterisk-dev.jsonl", splits["dev"])
    return AsteriskSplits(tuple(splits["train"]), tuple(splits["dev"]), tuple(skipped))
