"""SFT in two processes (accelerate, gloo on the CPU) trains like one process with the same global batch.

accelerate's ``--cpu`` launcher starts more than one process only through mpirun, so the test
uses its torchrun launcher (``--multi_gpu``) with ``ACCELERATE_USE_CPU=true`` and no visible GPU:
accelerate then sets up MULTI_CPU with the gloo backend. This module is also the script each
process runs (``python -m tests.training.test_distributed OUT MANIFEST CACHE STEPS BATCH``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from training.data.manifest import Utterance, read_manifest, write_manifest

REPO = Path(__file__).resolve().parents[2]
LR = 1e-2
# Transcripts of one length, so each process's token-mean loss weighs every token as the
# global batch's mean does, and two processes' averaged gradients equal one process's.
EQUAL_TEXTS = ["good morning", "see you soon", "next meeting", "thanks a lot", "hello sensor", "quiet harbor"]


def _config(out: Path, manifest: str, cache: str, steps: int, batch_size: int):
    from training.recipes import sft

    return sft.SFTConfig(
        model="tiny", train_manifests=(manifest,), out_dir=str(out), cache_dir=cache, steps=steps,
        batch_size=batch_size, lr=LR, warmup_steps=1, log_every=1, save_every=1000,
    )  # fmt: skip


def _worker(argv: list[str]) -> None:
    """One process's part: a single optimizer step (its batch, gradient and update), then a longer run."""
    from safetensors.torch import save_file

    from training.recipes import sft

    out, manifest, cache, steps, batch_size = Path(argv[0]), argv[1], argv[2], int(argv[3]), int(argv[4])
    state = sft.setup(_config(out / "one-step", manifest, cache, 1, batch_size))
    rank = state.accelerator.process_index
    before = {k: v.clone() for k, v in state.model.trainable_state_dict().items()}
    batch_ids = [u.id for u in sft._sample(state, 0, 0)]
    sft.train(state)
    after = state.model.trainable_state_dict()
    # Adam's first moment after one step is (1 - β1)·g: the (all-reduced, clipped) gradient.
    # (The token-CTC blank gets no gradient here: token_ctc_weight is 0, so it has no optimizer state.)
    moments = {
        name: state.optimizer.state[p]["exp_avg"] for name, p in state.model.named_parameters() if p in state.optimizer.state
    }
    tensors = {f"update/{k}": after[k] - before[k] for k in after} | {f"exp_avg/{k}": v for k, v in moments.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / f"one-step-rank{rank}.safetensors")
    (out / f"batch-rank{rank}.json").write_text(json.dumps(batch_ids))

    state = sft.setup(_config(out / "run", manifest, cache, steps, batch_size))
    sft.train(state)
    final = {k: v.contiguous() for k, v in state.model.trainable_state_dict().items()}
    save_file(final, out / f"final-rank{rank}.safetensors")
    state.accelerator.end_training()


@pytest.fixture(scope="module")
def equal_length_manifest(tiny_manifest) -> Path:
    clips = read_manifest(tiny_manifest)
    assert len({len(t) for t in EQUAL_TEXTS}) == 1
    utterances = [
        Utterance(id=u.id, audio=u.audio, text=t, duration_s=u.duration_s) for u, t in zip(clips, EQUAL_TEXTS, strict=True)
    ]
    return write_manifest(tiny_manifest.parent / "equal-length.jsonl", utterances)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_two_processes(out: Path, manifest: Path, cache: Path, steps: int, batch_size: int) -> None:
    config = out / "accelerate.yaml"  # explicit, so a user's own accelerate config plays no part
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 1\nnum_processes: 2\n"
                      "machine_rank: 0\nmixed_precision: 'no'\nuse_cpu: false\ngpu_ids: all\n")  # fmt: skip
    env = os.environ | {
        "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }  # fmt: skip
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "tests.training.test_distributed", str(out), str(manifest), str(cache), str(steps), str(batch_size),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"accelerate launch failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_two_processes_train_like_one_with_the_same_global_batch(equal_length_manifest, tmp_path):
    import torch
    import torch.distributed as dist
    from safetensors.torch import load_file

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this torch build has no torch.distributed with the gloo backend")
    steps, cache = 12, tmp_path / "cache"
    single, double = tmp_path / "one-process", tmp_path / "two-processes"
    single.mkdir()
    double.mkdir()
    # Four of the six clips per step: in one process, or two in each of two.
    _worker([str(single), str(equal_length_manifest), str(cache), str(steps), "4"])
    _launch_two_processes(double, equal_length_manifest, cache, steps, batch_size=2)

    # Each process trains on its own half of the one-process batch.
    halves = [json.loads((double / f"batch-rank{r}.json").read_text()) for r in (0, 1)]
    assert not set(halves[0]) & set(halves[1])
    assert sorted(halves[0] + halves[1]) == sorted(json.loads((single / "batch-rank0.json").read_text()))

    # The first optimizer step: the same gradient and the same update as one process with the global batch.
    one, two = load_file(single / "one-step-rank0.safetensors"), load_file(double / "one-step-rank0.safetensors")
    assert one.keys() == two.keys()
    for key in (k for k in one if k.startswith("exp_avg/")):
        scale = one[key].abs().max().item()
        assert scale > 0 or "lora_A" in key, key  # LoRA's A gets no gradient while B is still zero
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5 * scale + 1e-12, msg=key)
    updates = [k for k in one if k.startswith("update/")]
    assert max(one[k].abs().max().item() for k in updates) > 0.5 * LR  # Adam's first step moves by about lr
    for key in updates:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-3 * LR, msg=key)

    # The processes end with the same weights, and the checkpoint holds them.
    rank0, rank1 = load_file(double / "final-rank0.safetensors"), load_file(double / "final-rank1.safetensors")
    saved = load_file(double / "run" / "last" / "trained.safetensors")
    assert all(torch.equal(rank0[k], rank1[k]) and torch.equal(rank0[k], saved[k]) for k in saved)

    for run in (single / "run", double / "run"):
        losses = _losses(run)
        assert len(losses) == steps
        assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), (run.parent.name, losses)


if __name__ == "__main__":
    _worker(sys.argv[1:])
