"""Recording: the Qt-free recorder through a sounddevice stub, the dialog, no PortAudio, and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.recorder import FLUSH_INTERVAL_S, Recorder, RecorderError, list_input_devices
from tests.app import fake_sounddevice
from tests.app.fake_sounddevice import BLOCK, RATE, sine

REPO = Path(__file__).resolve().parents[2]
PCM16_STEP = 1 / 32768


@pytest.fixture
def fake_sd(monkeypatch):
    module = fake_sounddevice.make_module()
    fake_sounddevice.InputStream.realtime = False
    fake_sounddevice.InputStream.on_feed = None
    fake_sounddevice.InputStream.instances = []
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return module


def test_lists_only_input_devices(fake_sd):
    devices = list_input_devices()
    assert [d.name for d in devices] == ["Fake microphone", "USB headset"]
    assert [d.is_default for d in devices] == [True, False]


def test_records_what_was_fed_and_skips_what_came_while_paused(fake_sd, tmp_path):
    recorder = Recorder(tmp_path / "rec.wav")
    recorder.start()
    stream = fake_sounddevice.InputStream.instances[-1]
    stream.feed(10)  # 1.0 s
    assert recorder.level_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.2)  # a 0.5 sine peaks at -6 dBFS
    recorder.pause()
    stream.feed(5)  # dropped
    recorder.resume()
    stream.feed(10)
    recording = recorder.stop()
    assert recording.duration_s == pytest.approx(2.0)
    samples, rate = sf.read(recording.path, dtype="float32")
    assert rate == RATE
    expected = np.concatenate([sine(0, 10 * BLOCK), sine(15 * BLOCK, 10 * BLOCK)])
    assert len(samples) == len(expected)
    assert np.max(np.abs(samples - expected)) <= PCM16_STEP


def test_without_portaudio_recording_says_so(monkeypatch, qtbot, tmp_path):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails, as without the PortAudio library
    with pytest.raises(RecorderError, match="PortAudio"):
        list_input_devices()
    from app.record_dialog import RecordDialog

    dialog = RecordDialog(folder=tmp_path)
    qtbot.addWidget(dialog)
    assert not dialog.available and not dialog.record_button.isEnabled()
    assert "libportaudio2" in dialog.message.text()
    dialog.start()  # does nothing, raises nothing
    assert dialog.recorder is None and list(tmp_path.iterdir()) == []


def test_without_a_microphone_recording_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice.make_module(devices=fake_sounddevice.DEVICES[:1]))
    with pytest.raises(RecorderError, match="No microphone"):
        list_input_devices()


def test_dialog_records_pauses_and_stops_into_a_job(qtbot, monkeypatch, make_window, tmp_path):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice.make_module())
    fake_sounddevice.InputStream.realtime = True
    fake_sounddevice.InputStream.on_feed = None
    window = make_window()
    window.settings.input_device = "USB headset"
    from app.record_dialog import RecordDialog

    dialog = RecordDialog(preferred_device=window.settings.input_device, folder=tmp_path / "recordings")
    qtbot.addWidget(dialog)
    dialog.recorded.connect(lambda path: window.add_files([path]))
    assert dialog.device_name == "USB headset"
    dialog.start()
    qtbot.waitUntil(lambda: dialog.meter.dbfs > -10, timeout=2000)  # the meter follows the input
    qtbot.waitUntil(lambda: dialog.recorder.elapsed_s >= 0.5, timeout=3000)
    dialog.toggle_pause()
    assert dialog.pause_button.text() == "Resume"
    paused_at = dialog.recorder.elapsed_s
    qtbot.wait(300)
    assert dialog.recorder.elapsed_s == pytest.approx(paused_at)
    dialog.toggle_pause()
    qtbot.waitUntil(lambda: dialog.recorder.elapsed_s >= paused_at + 0.3, timeout=3000)
    assert dialog.clock.text() == "0:00"
    with qtbot.waitSignal(dialog.recorded, timeout=3000) as blocker:
        dialog.stop()
    path = blocker.args[0]
    assert path.parent == tmp_path / "recordings" and sf.info(str(path)).duration >= 0.8
    assert window.jobs.job(window._current_id).audio_path == path.resolve()


CRASH_SCRIPT = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.app import fake_sounddevice
fake_sounddevice.install(realtime=True, on_feed=lambda total: print(total, flush=True))
from app.recorder import Recorder
Recorder(__import__("pathlib").Path(sys.argv[1])).start()
time.sleep(60)
"""


def test_a_killed_recording_keeps_all_but_the_last_second(tmp_path):
    path = tmp_path / "crash.wav"
    process = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT.format(repo=str(REPO)), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    fed = 0
    try:
        deadline = time.monotonic() + 20
        while fed < 3 * RATE and time.monotonic() < deadline:  # three seconds of audio
            line = process.stdout.readline()
            if not line:
                break
            fed = int(line)
        assert fed >= 3 * RATE, "the recorder subprocess did not start"
        time.sleep(0.37)  # land somewhere between two flushes
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    for line in process.stdout.read().split():
        fed = max(fed, int(line))  # blocks fed before the kill that the reader had not yet seen
    assert process.returncode == -signal.SIGKILL

    samples, rate = sf.read(path, dtype="float32")
    with wave.open(str(path)) as header:  # the stdlib reader believes the header's length, so it shows what flushing did
        header_frames = header.getnframes()
    lost_s = (fed - min(len(samples), header_frames)) / RATE
    print(f"\nkilled after {fed / RATE:.2f} s fed; file holds {len(samples) / RATE:.2f} s, its header "
          f"{header_frames / RATE:.2f} s; lost {lost_s:.2f} s "
          f"(flush every {FLUSH_INTERVAL_S} s)")
    assert rate == RATE
    assert 0 <= lost_s <= 1.0
    assert np.max(np.abs(samples - sine(0, len(samples)))) <= PCM16_STEP  # what is there is exactly what was fed
