"""The performance benchmarks in bench/: each runs end to end at toy size and prints what it promises.

The real measurements take minutes to hours (see README, "Performance"); these
runs use the tiny random model and seconds of audio, and check the output's
shape and the invariants a reader relies on (a ratio on the last line, one row
per system or length, memory that does not follow the recording's length).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SAMPLE = REPO / "resources" / "samples" / "interview.flac"
NUMBER = r"(\d+(?:\.\d+)?)"


def _bench(script: str, *args: str, timeout: float = 240) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()


def _clip(tmp_path: Path, start_s: float, end_s: float) -> Path:
    import soundfile as sf

    rate = sf.info(SAMPLE).samplerate
    samples, _ = sf.read(SAMPLE, dtype="float32", start=int(start_s * rate), stop=int(end_s * rate))
    path = tmp_path / "clip.flac"
    sf.write(path, samples, rate)
    return path


def test_cpu_speed_compares_both_systems_on_a_stitched_file(tmp_path):
    clip = _clip(tmp_path, 11.9, 15.2)  # one sentence of the bundled interview, with the pauses around it
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text(
        json.dumps({"id": "sensors", "audio": clip.name, "text": "We installed forty sensors in one summer."}) + "\n"
    )
    data = tmp_path / "data"
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("Rotterdam\nsensors\n")
    lines = _bench("cpu_speed.py", "--model", "tiny", "--manifest", str(manifest), "--minutes", str(5 / 60), "--files", "1",
                   "--runs", "1", "--data", str(data), "--hotwords", str(hotwords),
                   "--context", "-- an interview on air quality")  # fmt: skip
    assert "both systems get 2 hotword(s) and a context of 30 characters" in lines

    # The clip, stitched with pauses to at least 5 s; its reference is the text repeated.
    (built,) = data.glob("clips-*.flac")
    reference = built.with_suffix(".txt").read_text().split()
    assert len(reference) >= 2 * 7 and len(reference) % 7 == 0
    peer = importlib.util.find_spec("faster_whisper") is not None
    systems = ("keyscribe", "peer") if peer else ("keyscribe",)
    summary = {line.split()[0]: line.split() for line in lines if re.match(rf"(keyscribe|peer) +{NUMBER} ", line)}
    assert sorted(summary) == sorted(systems), lines
    run_rows = [line for line in lines if re.match(r" *1 +1 (keyscribe|peer) ", line)]
    assert len(run_rows) == len(systems)
    for row in summary.values():
        audio_s, wall_s, rtf, cpu_s, load_s, rss_mb = map(float, row[1:7])
        assert audio_s >= 5 and wall_s > 0 and cpu_s > 0 and load_s > 0 and rss_mb > 100
        assert rtf == pytest.approx(wall_s / audio_s, rel=0.05, abs=0.01)  # printed values are rounded
    if peer:
        # The peer is Whisper tiny.en itself: on clean TTS speech it gets nearly every word.
        assert float(summary["peer"][7].rstrip("%")) < 30.0
        assert re.fullmatch(
            rf"ratio wall time keyscribe/peer = {NUMBER}x \(RTF {NUMBER} vs {NUMBER}; CPU time {NUMBER}x\)", lines[-1]
        )
    else:
        assert lines[-1].startswith("keyscribe wall time")


def test_memory_scaling_prints_a_row_per_length_and_a_ratio(tmp_path):
    lines = _bench("memory_scaling.py", "--model", "tiny", "--durations", "10s,30s", "--data", str(tmp_path))
    rows = {line.split()[0]: line.split() for line in lines if re.match(r" *(10s|30s) ", line)}
    assert sorted(rows) == ["10s", "30s"], lines
    header = next(line for line in lines if "peak RSS MB" in line)
    column = re.split(r"\s{2,}", header.strip()).index("peak RSS MB")  # header names hold single spaces
    peaks = {name: float(row[column]) for name, row in rows.items()}  # the "peak RSS MB" column
    assert all(peak > 100 for peak in peaks.values())
    match = re.fullmatch(
        rf"ratio peak RSS 30s/10s = {NUMBER}x; wall time {NUMBER}x vs linear 3\.0x \({NUMBER}x linear\); "
        rf"CPU time {NUMBER}x \({NUMBER}x linear\)",
        lines[-1],
    )
    assert match, lines[-1]
    # Audio is streamed: three times the audio must not cost anywhere near three times the memory.
    assert float(match.group(1)) == pytest.approx(peaks["30s"] / peaks["10s"], abs=0.02)  # both printed rounded
    assert float(match.group(1)) < 1.5


@pytest.fixture(scope="module")
def gpu_footprint():
    spec = importlib.util.spec_from_file_location("gpu_footprint", BENCH / "gpu_footprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(module, monkeypatch, capsys, *args: str) -> list[str]:
    monkeypatch.setattr(sys, "argv", ["gpu_footprint.py", *args])
    assert module.main() == 0
    return capsys.readouterr().out.strip().splitlines()


def test_gpu_footprint_dry_run_counts_the_large_preset(gpu_footprint, monkeypatch, capsys):
    lines = _main(gpu_footprint, monkeypatch, capsys, "--dry-run")
    params = {
        line.split()[0]: int(line.split()[1].replace(",", ""))
        for line in lines
        if re.match(r"(encoder|adapter|llm|total) +\d", line)
    }
    assert 7.5e9 < params["llm"] < 7.7e9  # Qwen2-7B: 7.62e9 with its untied lm_head
    assert 0.6e9 < params["encoder"] < 0.68e9  # Whisper large-v3 encoder: 0.64e9
    assert params["total"] == params["encoder"] + params["adapter"] + params["llm"]
    match = re.fullmatch(rf"ratio estimated weights nf4/bf16 = {NUMBER}x \(llm alone {NUMBER}x\)", lines[-1])
    assert match and 0.3 < float(match.group(1)) < 0.5 and 0.3 < float(match.group(2)) < 0.4


def test_gpu_footprint_skips_cleanly_without_cuda(gpu_footprint, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = _main(gpu_footprint, monkeypatch, capsys)
    assert lines == [lines[0]] and lines[0].startswith("no CUDA device, skipping")


def test_gpu_footprint_builds_the_nf4_model_layer_by_layer_at_toy_size(gpu_footprint):
    """The GPU path's build code, run on the CPU: every linear but lm_head is 4-bit, nothing left on meta, it decodes."""
    bnb = pytest.importorskip("bitsandbytes")
    import torch

    encoder, adapter, llm, dtype = gpu_footprint.build("nf4", "cpu", tiny=True)
    quantized = set(gpu_footprint.quantized_linears(llm))
    assert quantized and "lm_head" not in quantized
    for name, layer in llm.named_modules():
        if name in quantized:
            assert isinstance(layer, bnb.nn.Linear4bit) and layer.weight.bnb_quantized
            assert layer.weight.numel() * 2 == layer.in_features * layer.out_features  # two 4-bit weights per byte
    tensors = [*encoder.parameters(), *encoder.buffers(), *adapter.parameters(), *llm.parameters(), *llm.buffers()]
    assert not any(t.is_meta for t in tensors)
    with torch.inference_mode():
        embeds = torch.randn(1, 12, llm.config.hidden_size, dtype=dtype)
        out = llm.generate(inputs_embeds=embeds, max_new_tokens=5, min_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 5)


def test_longform_wer_scores_the_long_file_and_its_utterances_alike(tmp_path):
    lines = _bench("longform_wer.py", "--model", "tiny", "--minutes", "0.5", "--data", str(tmp_path))
    assert re.search(r"min of audio from 2 utterances of sample", lines[0])  # the 24 s sample twice makes 30 s
    rows = {line.split()[0] for line in lines[2:4]}
    assert rows == {"long-form", "one"}
    assert re.fullmatch(rf"long-form WER / one-by-one WER = ({NUMBER}|nan)", lines[-1])
