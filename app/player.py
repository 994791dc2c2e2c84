"""Audio playback for the review panel: QMediaPlayer with seconds, speed and seeking before load.

Qt Multimedia comes with PySide6-Addons. Without it, or without a sound
output, the player says so in ``unavailable_reason`` and the rest of the
review panel keeps working.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal

try:
    from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
except ImportError:  # PySide6-Addons missing: no playback, everything else works
    QMediaPlayer = None

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
SKIP_BACK_S = 5.0


class Player(QObject):
    positionChanged = Signal(float)  # seconds
    playingChanged = Signal(bool)
    durationChanged = Signal(float)
    rateChanged = Signal(float)
    errorOccurred = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.unavailable_reason = ""
        self._pending_seek_s: float | None = None
        self._play_after_seek = False
        self._source: Path | None = None
        if QMediaPlayer is None:
            self.unavailable_reason = "Playback needs Qt Multimedia: install PySide6-Addons (pip install PySide6-Addons)."
            self._player = None
            return
        self._player = QMediaPlayer(self)
        self._output = QAudioOutput(self)
        self._player.setAudioOutput(self._output)
        self._player.positionChanged.connect(lambda ms: self.positionChanged.emit(ms / 1000))
        self._player.durationChanged.connect(lambda ms: self.durationChanged.emit(ms / 1000))
        self._player.playbackStateChanged.connect(lambda state: self.playingChanged.emit(state == QMediaPlayer.PlaybackState.PlayingState))
        self._player.playbackRateChanged.connect(self.rateChanged)
        self._player.mediaStatusChanged.connect(self._on_status)
        self._player.errorOccurred.connect(lambda _error, message: self.errorOccurred.emit(message))
        if not QMediaDevices.audioOutputs():
            self.unavailable_reason = "No sound output was found: playback runs silently."

    @property
    def available(self) -> bool:
        return self._player is not None

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def playing(self) -> bool:
        return self._player is not None and self._player.playbackState() == QMediaPlayer.PlaybackState.PlayingState

    @property
    def position_s(self) -> float:
        if self._pending_seek_s is not None:
            return self._pending_seek_s
        return self._player.position() / 1000 if self._player is not None else 0.0

    @property
    def duration_s(self) -> float:
        return self._player.duration() / 1000 if self._player is not None else 0.0

    @property
    def rate(self) -> float:
        return self._player.playbackRate() if self._player is not None else 1.0

    def set_source(self, path: Path | None) -> None:
        if self._player is None or path == self._source:
            return
        self._player.stop()
        self._source = path
        self._pending_seek_s = None
        self._player.setSource(QUrl.fromLocalFile(str(path)) if path is not None else QUrl())

    def play_from(self, seconds: float) -> None:
        self.seek(seconds)
        self.play()

    def seek(self, seconds: float) -> None:
        if self._player is None:
            return
        seconds = max(0.0, seconds)
        if self._player.mediaStatus() in (QMediaPlayer.MediaStatus.LoadedMedia, QMediaPlayer.MediaStatus.BufferedMedia,
                                          QMediaPlayer.MediaStatus.BufferingMedia, QMediaPlayer.MediaStatus.EndOfMedia):
            self._player.setPosition(int(seconds * 1000))
            self.positionChanged.emit(seconds)
        else:
            self._pending_seek_s = seconds  # QMediaPlayer ignores a seek before the file has loaded

    def play(self) -> None:
        if self._player is not None:
            self._player.play()

    def pause(self) -> None:
        if self._player is not None:
            self._player.pause()

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def skip_back(self, seconds: float = SKIP_BACK_S) -> None:
        self.seek(self.position_s - seconds)

    def set_rate(self, rate: float) -> None:
        if self._player is not None:
            self._player.setPlaybackRate(rate)

    def step_rate(self, steps: int) -> float:
        """Move ``steps`` along SPEEDS (negative = slower); returns the new rate."""
        current = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.rate))
        rate = SPEEDS[min(max(current + steps, 0), len(SPEEDS) - 1)]
        self.set_rate(rate)
        return rate

    def _on_status(self, status) -> None:
        if status in (QMediaPlayer.MediaStatus.LoadedMedia, QMediaPlayer.MediaStatus.BufferedMedia) and self._pending_seek_s is not None:
            seconds, self._pending_seek_s = self._pending_seek_s, None
            self._player.setPosition(int(seconds * 1000))
            self.positionChanged.emit(seconds)
        elif status == QMediaPlayer.MediaStatus.InvalidMedia:
            self.errorOccurred.emit(f"{self._source} cannot be played.")
