"""A stand-in for the sounddevice module: one fake microphone whose InputStream feeds a sine.

``install()`` puts it in sys.modules, so app.recorder uses it without PortAudio
or a sound card. Blocks are fed either by the test (``feed``) or, with
``realtime=True``, by a thread at the pace a real microphone would deliver them.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from typing import ClassVar

import numpy as np

RATE = 16000
BLOCK = 1600  # 0.1 s
AMPLITUDE = 0.5
FREQUENCY_HZ = 440.0


def sine(start: int, count: int) -> np.ndarray:
    k = np.arange(start, start + count)
    return (AMPLITUDE * np.sin(2 * np.pi * FREQUENCY_HZ * k / RATE)).astype(np.float32)


class PortAudioError(Exception):
    pass


class InputStream:
    realtime = False
    on_feed = None  # called with the total frames fed so far, after each block
    instances: ClassVar[list] = []

    def __init__(self, device=None, channels=1, samplerate=None, dtype="float32", callback=None):
        self.callback = callback
        self.samplerate = samplerate
        self.fed = 0
        self._running = False
        self._thread = None
        InputStream.instances.append(self)

    def start(self):
        self._running = True
        if self.realtime:
            self._thread = threading.Thread(target=self._pump, daemon=True)
            self._thread.start()

    def feed(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            block = sine(self.fed, BLOCK)[:, None]  # (frames, channels), as PortAudio hands it over
            self.callback(block, BLOCK, None, None)
            self.fed += BLOCK
            if InputStream.on_feed is not None:
                InputStream.on_feed(self.fed)

    def _pump(self):
        next_at = time.monotonic()
        while self._running:
            self.feed()
            next_at += BLOCK / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self._running = False
        if self._thread is not None:
            self._thread.join()

    def close(self):
        self._running = False


DEVICES = [
    {"name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0},
    {"name": "Fake microphone", "max_input_channels": 1, "default_samplerate": float(RATE)},
    {"name": "USB headset", "max_input_channels": 1, "default_samplerate": float(RATE)},
]


def make_module(devices=DEVICES, default_input: int = 1) -> types.ModuleType:
    module = types.ModuleType("sounddevice")
    module.PortAudioError = PortAudioError
    module.InputStream = InputStream
    module.default = types.SimpleNamespace(device=[default_input, 0])

    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return list(devices)
        return devices[default_input if device is None else device]

    module.query_devices = query_devices
    return module


def install(realtime: bool = False, on_feed=None, devices=DEVICES) -> types.ModuleType:
    InputStream.realtime = realtime
    InputStream.on_feed = on_feed
    InputStream.instances = []
    module = make_module(devices)
    sys.modules["sounddevice"] = module
    return module
