"""The word-lm stage: a model folder gets the lexicon drafts' bigram, built from training transcripts only."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from engine.lexicon import WORD_LM_FILE, WordLM
from training.recipes import word_lm

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models" / "default"


def write_manifest(path: Path, texts: list[str]) -> Path:
    lines = [json.dumps({"id": f"{path.stem}-{i}", "audio": f"{i}.flac", "text": t, "duration_s": 2.0}) for i, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_stage_writes_a_model_folder_with_an_lm_that_never_read_a_dev_sentence(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model, ignore=shutil.ignore_patterns(WORD_LM_FILE))
    train = write_manifest(tmp_path / "train.jsonl", ["Press one to leave.", "Press two to stay.", "The pound key, please."])
    dev = write_manifest(tmp_path / "dev.jsonl", ["Press two to stay!"])
    config = word_lm.WordLMConfig(init_from=str(model), train_manifests=(str(train),), dev_manifests=(str(dev),),
                                  out_dir=str(tmp_path / "run"), general_words=0, frequency_share=0.0)
    state = word_lm.train(word_lm.setup(config))
    assert state.dropped == 1  # the dev sentence, though punctuated differently
    out = tmp_path / "run" / "best"
    assert (out / "trained.safetensors").is_file() and (out / "config.json").is_file()
    lm = WordLM.load(out / WORD_LM_FILE)
    assert "stay" not in lm.unigram and "leave" in lm.unigram
    assert lm.log_prob("one", "press") > math.log(lm.unigram["one"])


def test_a_config_without_training_text_is_refused():
    with pytest.raises(ValueError, match="train_manifests"):
        word_lm.WordLMConfig(train_manifests=())
    with pytest.raises(ValueError, match="frequency_share"):
        word_lm.WordLMConfig(train_manifests=("a.jsonl",), general_words=0, frequency_share=0.5)
