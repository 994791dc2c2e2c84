"""Write a Transcript to disk as TXT, SRT, WebVTT, JSON or DOCX.

Every format is rendered to bytes first and then written atomically (a temp
file in the target folder, then ``os.replace``), so a crash or a full disk
never leaves a half-written export or destroys the previous one.

SRT and WebVTT are written by hand: both are a few lines of text, and the
parsers (``srt``, ``webvtt-py``) are only needed by the tests that read them
back. python-docx is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import bisect
import io
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.transcript import Segment, Transcript, Word

# Subtitle sizing, the usual broadcast guidance (e.g. Netflix / BBC style guides).
MAX_LINE_CHARS = 42
MAX_LINES_PER_CUE = 2
MAX_CUE_DURATION_S = 7.0


@dataclass(frozen=True)
class Cue:
    """One subtitle: up to MAX_LINES_PER_CUE lines shown from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    lines: tuple[str, ...]


def format_timestamp(seconds: float, *, sep: str = ".", always_hours: bool = True) -> str:
    """``hh:mm:ss.mmm`` with ``sep`` before the milliseconds (``","`` for SRT).

    With ``always_hours=False`` the hours are left out when they are zero
    (``mm:ss.mmm``, allowed by WebVTT). Rounds to the nearest millisecond.
    """
    if not seconds >= 0:  # also catches NaN
        raise ValueError(
            f"Cannot format a timestamp for {seconds!r} s; it must be a non-negative number."
        )
    total_ms = round(seconds * 1000)  # round once, so 59.9996 s becomes 01:00.000, not 00:60.000
    hours, rest_ms = divmod(total_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs, millis = divmod(rest_ms, 1000)
    clock = f"{minutes:02d}:{secs:02d}{sep}{millis:03d}"
    if always_hours or hours:
        clock = f"{hours:02d}:{clock}"
    return clock


def _format_clock(seconds: float) -> str:
    """``hh:mm:ss``, truncated to the whole second, as a reader's bracketed time mark."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------------
# Subtitle cues


@dataclass(frozen=True)
class _Token:
    """A piece of segment text that is never split across lines, with its time span."""

    text: str
    glued: bool  # True: continues the previous token with no space (a hard-broken long word)
    start_s: float
    end_s: float


def _join(tokens: list[_Token]) -> str:
    parts = [tokens[0].text]
    for token in tokens[1:]:
        parts.append(token.text if token.glued else " " + token.text)
    return "".join(parts)


def _wrap_lines(tokens: list[_Token]) -> list[str] | None:
    """Lines of at most MAX_LINE_CHARS, as few as possible and as even as possible.

    Returns None when the tokens need more than MAX_LINES_PER_CUE lines.
    """
    one_line = _join(tokens)
    if len(one_line) <= MAX_LINE_CHARS:
        return [one_line]
    # Written for MAX_LINES_PER_CUE == 2: pick the break that makes the longer line shortest.
    best: list[str] | None = None
    for split in range(1, len(tokens)):
        first, second = _join(tokens[:split]), _join(tokens[split:])
        if len(first) <= MAX_LINE_CHARS and len(second) <= MAX_LINE_CHARS:
            if best is None or max(len(first), len(second)) < max(map(len, best)):
                best = [first, second]
    return best


def _tokenize(segment: Segment) -> list[_Token]:
    """Split the text at whitespace (words longer than a line are hard-broken) and time each piece.

    Times come from the segment's words when their text matches the segment's
    text (ignoring whitespace); otherwise they are spread over the segment in
    proportion to character counts.
    """
    pieces: list[tuple[str, bool]] = []
    for word in segment.text.split():
        for offset in range(0, len(word), MAX_LINE_CHARS):
            pieces.append((word[offset : offset + MAX_LINE_CHARS], offset > 0))

    # Character offsets below count non-whitespace characters only, so that
    # segment text and word texts can be matched whatever their spacing.
    total_chars = sum(len(text) for text, _ in pieces)
    word_texts = ["".join(word.text.split()) for word in segment.words]
    use_words = bool(segment.words) and "".join(word_texts) == "".join(text for text, _ in pieces)

    if use_words:
        timed_words = [
            (word, len(text)) for word, text in zip(segment.words, word_texts, strict=True) if text
        ]
        word_first_chars: list[int] = []
        position = 0
        for _, length in timed_words:
            word_first_chars.append(position)
            position += length

        def word_at(char: int) -> Word:
            return timed_words[bisect.bisect_right(word_first_chars, char) - 1][0]

        def span_s(first_char: int, end_char: int) -> tuple[float, float]:
            return word_at(first_char).start_s, word_at(end_char - 1).end_s

    else:
        duration_s = segment.end_s - segment.start_s

        def span_s(first_char: int, end_char: int) -> tuple[float, float]:
            return (
                segment.start_s + duration_s * first_char / total_chars,
                segment.start_s + duration_s * end_char / total_chars,
            )

    tokens = []
    position = 0
    for text, glued in pieces:
        start_s, end_s = span_s(position, position + len(text))
        tokens.append(_Token(text, glued, start_s, end_s))
        position += len(text)
    return tokens


def _segment_cues(segment: Segment) -> list[Cue]:
    """Greedily fill cues up to MAX_LINES_PER_CUE x MAX_LINE_CHARS and MAX_CUE_DURATION_S."""
    tokens = _tokenize(segment)
    groups: list[list[_Token]] = []
    current: list[_Token] = []
    for token in tokens:
        candidate = current + [token]
        cue_start_s = segment.start_s if not groups else candidate[0].start_s
        too_long_s = token.end_s - cue_start_s > MAX_CUE_DURATION_S
        if current and (too_long_s or _wrap_lines(candidate) is None):
            groups.append(current)
            current = [token]
        else:
            current = candidate
    if current:
        groups.append(current)

    cues = []
    for index, group in enumerate(groups):
        # The first cue appears when the segment starts and the last one stays
        # until it ends, as an unsplit segment would; inner edges follow the text.
        start_s = segment.start_s if index == 0 else group[0].start_s
        end_s = segment.end_s if index == len(groups) - 1 else group[-1].end_s
        lines = _wrap_lines(group)
        assert lines is not None  # a single token always fits: long words were hard-broken
        cues.append(Cue(start_s, end_s, tuple(lines)))
    return cues


def subtitle_cues(transcript: Transcript) -> tuple[Cue, ...]:
    """Subtitle-sized cues in time order, never overlapping; empty segments are skipped."""
    cues: list[Cue] = []
    previous_end_s = 0.0
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        for cue in _segment_cues(segment):
            # Segments and words may overlap a little; a cue never starts before
            # the previous one ends, and never ends before it starts.
            start_s = max(cue.start_s, previous_end_s)
            end_s = max(cue.end_s, start_s)
            cues.append(Cue(start_s, end_s, cue.lines))
            previous_end_s = end_s
    return tuple(cues)


# ---------------------------------------------------------------------------
# Renderers: each turns a transcript into the bytes of one file format.


@dataclass(frozen=True)
class _RenderOptions:
    timestamps: bool  # TXT only: prefix each line with [hh:mm:ss]
    title: str  # DOCX only


def _render_txt(transcript: Transcript, options: _RenderOptions) -> bytes:
    lines = []
    for segment in transcript.segments:
        text = " ".join(
            segment.text.split()
        )  # one line per segment, even if the text holds newlines
        if not text:
            continue
        lines.append(f"[{_format_clock(segment.start_s)}] {text}" if options.timestamps else text)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _render_srt(transcript: Transcript, options: _RenderOptions) -> bytes:
    blocks = []
    for number, cue in enumerate(subtitle_cues(transcript), start=1):
        start = format_timestamp(cue.start_s, sep=",")
        end = format_timestamp(cue.end_s, sep=",")
        blocks.append(f"{number}\n{start} --> {end}\n" + "\n".join(cue.lines) + "\n")
    return "\n".join(blocks).encode("utf-8")


def _escape_vtt(text: str) -> str:
    # WebVTT cue text is markup: "&" and "<" must be escaped, and ">" too so "-->" cannot appear.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_vtt(transcript: Transcript, options: _RenderOptions) -> bytes:
    blocks = ["WEBVTT\n"]
    for cue in subtitle_cues(transcript):
        timing = f"{format_timestamp(cue.start_s)} --> {format_timestamp(cue.end_s)}"
        blocks.append(timing + "\n" + "\n".join(_escape_vtt(line) for line in cue.lines) + "\n")
    return "\n".join(blocks).encode("utf-8")


def _render_json(transcript: Transcript, options: _RenderOptions) -> bytes:
    return (json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# Characters XML 1.0 (and so DOCX) cannot hold: C0 controls other than tab, newline, return.
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _render_docx(transcript: Transcript, options: _RenderOptions) -> bytes:
    try:
        import docx  # lazy: python-docx is only needed for this one format
        from docx.shared import Pt, RGBColor
    except ImportError as error:
        raise RuntimeError(
            "Exporting to DOCX needs the python-docx package; install it with "
            "'pip install python-docx', or export to another format."
        ) from error

    grey = RGBColor(0x80, 0x80, 0x80)
    document = docx.Document()
    document.core_properties.title = options.title
    document.add_heading(options.title, level=0)

    meta = [f"Duration {_format_clock(transcript.duration_s)}"]
    if transcript.model:
        meta.append(f"Model {transcript.model}")
    meta_run = document.add_paragraph().add_run(" · ".join(meta))
    meta_run.font.size = Pt(9)
    meta_run.font.color.rgb = grey

    for segment in transcript.segments:
        text = segment.text.strip()
        if not text:
            continue
        paragraph = document.add_paragraph()
        stamp = paragraph.add_run(f"[{_format_clock(segment.start_s)}]")
        stamp.bold = True
        stamp.font.color.rgb = grey
        paragraph.add_run(" " + _XML_UNSAFE.sub("", text))

    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


_RENDERERS: dict[str, Callable[[Transcript, _RenderOptions], bytes]] = {
    "txt": _render_txt,
    "srt": _render_srt,
    "vtt": _render_vtt,
    "json": _render_json,
    "docx": _render_docx,
}
FORMATS = tuple(_RENDERERS)  # ("txt", "srt", "vtt", "json", "docx")


# ---------------------------------------------------------------------------
# Writing


def _resolve_format(path: Path, fmt: str | None) -> str:
    supported = ", ".join(FORMATS)
    if fmt is None:
        fmt = path.suffix
        if not fmt:
            raise ValueError(
                f"Cannot tell the export format of '{path.name}' because it has no file "
                f"extension; add one of {supported} or pass fmt."
            )
    name = fmt.lower().lstrip(".")
    if name not in _RENDERERS:
        raise ValueError(f"Unknown export format {fmt!r}; supported formats are {supported}.")
    return name


def write_atomically(path: Path, data: bytes) -> None:
    """Write the whole file or nothing: a temp file in the same folder, fsynced, then renamed over ``path``."""
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cannot export to '{path}': the folder '{folder}' does not exist. "
            "Choose an existing folder."
        )
    temp_path = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # os.open with mode 0o666 lets the umask set permissions, as for any new file
    # (tempfile's 0o600 would make the export private to this user).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp_path, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def export(
    transcript: Transcript,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    timestamps: bool = False,
    title: str | None = None,
) -> Path:
    """Write ``transcript`` to ``path`` and return the path written.

    ``fmt`` is one of FORMATS; when None it comes from the file extension.
    ``timestamps`` prefixes TXT lines with ``[hh:mm:ss]`` (SRT, VTT and DOCX
    always carry times; JSON carries them all). ``title`` heads a DOCX file and
    defaults to the file name without its extension.
    """
    path = Path(path)
    name = _resolve_format(path, fmt)
    options = _RenderOptions(timestamps=timestamps, title=title if title is not None else path.stem)
    data = _RENDERERS[name](transcript, options)  # render fully before touching the disk
    write_atomically(path, data)
    return path
