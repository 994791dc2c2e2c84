"""Cache of frozen-encoder outputs, so training does not re-run Whisper every epoch.

Each utterance's encoder frames (T, C) are stored in float16 in safetensors
shards next to an index. The cache folder is keyed by the encoder's weights
(their packaged source, or else a hash of the weights themselves) and the
manifest, and a build that stops half way resumes at the first missing shard.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from engine.audio import load_audio
from engine.model.acllm import AcLLM
from engine.weights import WeightSource
from training.data.manifest import Utterance

SHARD_SIZE = 256  # utterances per shard file


@dataclass(frozen=True)
class EncoderCache:
    folder: Path
    index: dict[str, str]  # utterance id -> shard file name

    def load_shard(self, name: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.folder / name)


def cache_key(model: AcLLM, manifest: Path) -> str:
    """Names the cache by what determines its contents: encoder weights, window and manifest.

    A packaged encoder is named by its source (the package pins its file by sha256). Any other
    encoder (random, SSL-initialised, from a checkpoint or a folder) is named by a hash of its
    weights, since two such encoders can share a source string and differ in every weight.
    """
    digest = hashlib.sha256()
    source = model.config.encoder.source
    if WeightSource.parse(source).kind == "package":
        digest.update(source.encode())
    else:
        digest.update(b"weights:" + encoder_weights_digest(model.encoder.whisper).encode())
    if model.encoder.trimmed:  # the same weights give other frames on trimmed windows
        digest.update(b"window:trimmed")
    digest.update(Path(manifest).resolve().read_bytes())
    return digest.hexdigest()[:16]


def encoder_weights_digest(encoder: torch.nn.Module) -> str:
    """sha256 over an encoder's state dict: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_encoder_cache(model: AcLLM, utterances: list[Utterance], folder: Path, batch_size: int = 8, progress: bool = True) -> EncoderCache:
    """Run the encoder over every utterance once (resumable) and return the cache."""
    from safetensors.torch import save_file

    if model.config.encoder.trainable:
        raise ValueError("a trainable encoder changes every step; its outputs cannot be cached")
    folder.mkdir(parents=True, exist_ok=True)
    shards = [utterances[i : i + SHARD_SIZE] for i in range(0, len(utterances), SHARD_SIZE)]
    index: dict[str, str] = {}
    bar = tqdm(total=len(utterances), desc=f"encoder cache {folder.name}", unit="utt", disable=not progress)
    for number, shard in enumerate(shards):
        name = f"shard-{number:05d}.safetensors"
        index.update({u.id: name for u in shard})
        if not _holds(folder / name, [u.id for u in shard]):
            tensors: dict[str, torch.Tensor] = {}
            for start in range(0, len(shard), batch_size):
                batch = shard[start : start + batch_size]
                features = model.frontend([load_audio(u.audio) for u in batch])
                with torch.inference_mode():
                    frames, lengths = model.encoder(features.mel.to(model.device), features.mel_lengths.to(model.device))
                for utt, row, length in zip(batch, frames, lengths.tolist(), strict=True):
                    tensors[utt.id] = row[:length].to(torch.float16).contiguous().cpu()  # (T, C)
                bar.update(len(batch))
            partial = folder / (name + ".partial")
            save_file(tensors, partial)
            partial.rename(folder / name)
        else:
            bar.update(len(shard))
    bar.close()
    (folder / "index.json").write_text(json.dumps(index))
    return EncoderCache(folder=folder, index=index)


def _holds(path: Path, ids: list[str]) -> bool:
    """True if the shard file exists and has every one of these utterances (a run with another
    subset of the same manifest may have written it)."""
    from safetensors import safe_open

    if not path.is_file():
        return False
    with safe_open(str(path), framework="pt") as shard:
        return set(ids) <= set(shard.keys())
