"""Training data: JSONL manifests, loaders for real corpora, and an offline synthetic corpus.

    python -m training.data build --out data/ --tts-hours 0.5 --seed 0 --jobs 2
"""

from .manifest import Utterance, read_manifest, write_manifest

__all__ = ["Utterance", "read_manifest", "write_manifest"]
