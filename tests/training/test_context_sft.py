"""Context SFT: the context sampler's promises, and the recipe on the tiny preset (loss, engine load, resume)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from training.context import ContextConfig, ContextSampler, fake_names, find_terms
from training.data.manifest import Utterance, read_manifest, write_manifest

pytest.importorskip("wordfreq", reason="context SFT needs wordfreq (the train extra)")

# Short texts (the tiny LLM reads bytes) with names and rare words to find.
CONTEXT_TEXTS = [
    "Priya met Novartis",
    "the quixotic zephyr",
    "ask Oswin Tarrant",
    "a gloomy harbour",
    "Zuzana from Siemens",
    "the tarnished sextant",
]


def _words(text: str) -> str:
    """Lower-case words between spaces, without possessive 's: for an independent whole-word check."""
    return " " + " ".join(re.findall(r"[\w']+", re.sub(r"['’]s\b", "", text.lower()))) + " "


def _in_reference(term: str, reference: str) -> bool:
    return _words(term) in _words(reference)


@pytest.fixture(scope="module")
def corpus() -> list[Utterance]:
    """Template sentences (names, companies, places as hotwords) from two speakers, plus hand-written ones."""
    from training.data.text_sources import sentence_stream

    texts = [(s.text, s.hotwords) for s in itertools.islice(sentence_stream(3, fortune_share=0.0), 60)]
    texts += [
        ("THE QUIXOTIC HARBOUR MASTER SAW A ZEPHYR", ()),  # LibriSpeech style: all capitals
        ("We met on Monday. It was fine.", ()),  # nothing rare: a "true" draw falls back to distractors
        ("Dr. Oswin Tarrant's sextant, she said, was tarnished.", ()),
    ]
    return [
        Utterance(id=f"c{i:03d}", audio=Path("x.flac"), text=text, duration_s=2.0, speaker="ab"[i % 2], hotwords=hotwords)
        for i, (text, hotwords) in enumerate(texts)
    ]


def test_find_terms_names_and_rare_words():
    text = "Let me introduce Dr. Priya Raghunathan, head of research at Novartis. The BBC said John Smith came on Monday."
    terms = find_terms(text)
    assert terms.names == ("Priya Raghunathan", "Novartis", "BBC", "John Smith")  # no "Let", "Dr", "The", "Monday"
    assert find_terms("Theo da Mota spoke.", given=["Theo da Mota"]).names == ("Theo da Mota",)
    caps = find_terms("THE QUIXOTIC HARBOUR MASTER SAW A ZEPHYR")
    rare = ["THE QUIXOTIC HARBOUR MASTER SAW A ZEPHYR"[a:b] for a, b in caps.rare]
    assert caps.names == () and "QUIXOTIC" in rare and "ZEPHYR" in rare and "THE" not in rare
    numbers = "It was nineteen fifty-five, quite quixotic."
    assert [numbers[a:b] for a, b in find_terms(numbers).rare] == ["quixotic"]


def test_sampler_keeps_its_promises(corpus):
    config = ContextConfig(p_true=0.5, p_none=0.25, max_true=3, max_distractors=12, p_meeting=0.5, p_history=0.5, fake_names=0)
    sampler = ContextSampler(config, [corpus], seed=1)
    kinds: dict[str, int] = {}
    sizes = []
    by_speaker: dict[str, list[str]] = {}
    for u in corpus:
        by_speaker.setdefault(u.speaker, []).append(u.text)
    for step in range(12):
        batch = corpus[(step * 8) % len(corpus) :][:8]
        for u, draw in zip(batch, sampler.sample(step, batch), strict=True):
            hotwords = draw.context.hotwords
            kinds[draw.kind] = kinds.get(draw.kind, 0) + 1
            sizes.append(len(hotwords))
            assert all(_in_reference(t, u.text) for t in draw.true_terms), (u.text, draw.true_terms)
            distractors = [h for h in hotwords if h not in draw.true_terms]
            assert not any(_in_reference(h, u.text) for h in distractors), (u.text, distractors)
            assert len({h.casefold() for h in hotwords}) == len(hotwords)
            if draw.kind == "true":
                assert 1 <= len(hotwords) - len(distractors) <= config.max_true
                assert len(distractors) <= config.max_distractors
            elif draw.kind == "none":
                assert 1 <= len(hotwords) <= config.max_distractors
                assert not any(_in_reference(h, u.text) for h in hotwords)
            else:
                assert hotwords == ()
            if draw.context.history:
                earlier = by_speaker[u.speaker][: by_speaker[u.speaker].index(u.text)]
                assert draw.context.history.endswith(earlier[-1])
    draws = sum(kinds.values())
    assert 0.3 < kinds["true"] / draws < 0.7 and kinds["none"] > 0.1 * draws and kinds["empty"] > 0.1 * draws
    assert max(sizes) >= config.max_distractors  # the bound is reached, not just respected
    # A reference with nothing rare never gets a "true" list.
    plain = next(u for u in corpus if u.text.startswith("We met on Monday"))
    assert all(sampler.sample(step, [plain])[0].kind != "true" for step in range(30))


def test_sampler_is_deterministic_by_seed_and_varies_by_step(corpus):
    config = ContextConfig(max_distractors=8, fake_names=40)
    first = ContextSampler(config, [corpus], seed=5)
    again = ContextSampler(config, [corpus], seed=5)
    other_seed = ContextSampler(config, [corpus], seed=6)
    batch = corpus[:8]
    assert first.pool == again.pool and set(fake_names(40, 5)) <= set(first.pool)
    assert fake_names(40, 5) != fake_names(40, 6)
    assert first.sample(3, batch) == again.sample(3, batch)
    assert first.sample(3, batch) != first.sample(4, batch)
    assert first.sample(3, batch) != other_seed.sample(3, batch)
    # An utterance's context depends on (seed, step, id) and its batch, not on where it sits in the batch.
    assert first.sample(3, batch)[2] == first.sample(3, batch[::-1])[-3]


def test_configs_load_and_validate(tmp_path):
    from training.config import load_config
    from training.recipes.context_sft import ContextSFTConfig

    root = Path(__file__).resolve().parents[2] / "training" / "configs"
    default = load_config(ContextSFTConfig, root / "context-sft-default.yaml")
    assert default.init_from and default.context.max_distractors == 20
    tiny = load_config(ContextSFTConfig, root / "context-sft-tiny.yaml")
    assert tiny.model == "tiny" and tiny.context.fake_names == 0
    with pytest.raises(ValueError, match="init_from"):
        ContextSFTConfig(model="default", train_manifests=("x.jsonl",))
    with pytest.raises(ValueError, match="p_true"):
        ContextConfig(p_true=0.8, p_none=0.3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\ntrain_manifests: [x.jsonl]\ncontext: {p_ture: 0.5}\n")
    with pytest.raises(ValueError, match="p_ture"):
        load_config(ContextSFTConfig, bad)


# ------------------------------------------------------------------------- the recipe
@pytest.fixture(scope="module")
def context_manifests(tiny_manifest) -> tuple[Path, Path]:
    """test_sft's six chord clips relabelled with names and rare words; a dev set with hotwords."""
    clips = read_manifest(tiny_manifest)
    train = [
        Utterance(id=u.id, audio=u.audio, text=text, duration_s=u.duration_s, speaker="s")
        for u, text in zip(clips, CONTEXT_TEXTS, strict=True)
    ]
    dev = [
        Utterance(id=f"dev{i}", audio=clips[i].audio, text=CONTEXT_TEXTS[i], duration_s=clips[i].duration_s, hotwords=hotwords)
        for i, hotwords in ((0, ("Priya", "Novartis", "Oswin")), (4, ("Zuzana", "Siemens")))
    ]
    folder = tiny_manifest.parent
    return write_manifest(folder / "context-train.jsonl", train), write_manifest(folder / "context-dev.jsonl", dev)


def _config(manifests, out: Path, steps: int, **overrides):
    from training.recipes.context_sft import ContextSFTConfig

    train, dev = manifests
    settings = dict(
        model="tiny", train_manifests=(str(train),), dev_manifests=(str(dev),), out_dir=str(out),
        cache_dir=str(out.parent / "cache"), steps=steps, batch_size=6, lr=1e-2, warmup_steps=2,
        log_every=5, save_every=10, eval_utterances=6,
        context=ContextConfig(p_true=0.6, p_none=0.2, max_distractors=4, p_meeting=0.3, p_history=0.3, fake_names=0),
    )  # fmt: skip
    return ContextSFTConfig(**(settings | overrides))


def test_context_sft_loss_falls_and_model_transcribes_with_hotwords(context_manifests, tmp_path):
    from engine.model.load import load_model
    from engine.prompt import PromptContext
    from engine.transcribe import TranscribeOptions, Transcriber
    from training.recipes import context_sft

    out = tmp_path / "run"
    state = context_sft.setup(_config(context_manifests, out, steps=25))
    seen = []
    sampler = state.contexts

    def recording(step, utterances):
        contexts = sampler(step, utterances)
        seen.extend(contexts)
        return contexts

    state.contexts = recording
    context_sft.train(state)
    assert len(seen) == 25 * 6
    assert sum(bool(c.hotwords) for c in seen) > 0.5 * len(seen) and any(c.meeting for c in seen) and any(c.history for c in seen)

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.75 * losses[0]
    evaluation = next(r for r in records if "dev_wer/context-dev" in r)
    assert "dev_wer/context-dev+hotwords" in evaluation  # the dev set carries hotwords
    assert (out / "best" / "trained.safetensors").is_file()

    model = load_model(out / "last", "cpu", "fp32")
    clip = read_manifest(context_manifests[1])[0].audio
    transcript = Transcriber(model, TranscribeOptions(segment=None)).transcribe(
        clip, PromptContext(hotwords=("Priya", "Novartis"))
    )
    assert len(transcript.segments) == 1 and isinstance(transcript.text, str)


def test_context_sft_starts_from_sft_and_resumes_identically(context_manifests, tiny_manifest, tmp_path):
    import torch
    from safetensors.torch import load_file

    from training.recipes import context_sft, sft

    sft.train(sft.setup(sft.SFTConfig(model="tiny", train_manifests=(str(tiny_manifest),), out_dir=str(tmp_path / "sft"),
                                      cache_dir=str(tmp_path / "cache"), steps=2, batch_size=6, lr=1e-2, warmup_steps=1)))  # fmt: skip
    init = str(tmp_path / "sft" / "last")
    no_dev = {"dev_manifests": (), "init_from": init, "save_every": 2, "log_every": 2}

    straight = context_sft.setup(_config(context_manifests, tmp_path / "straight", steps=6, **no_dev))
    sft_weights = load_file(Path(init) / "trained.safetensors")
    assert all(torch.equal(sft_weights[k], v) for k, v in straight.sft.model.trainable_state_dict().items())
    context_sft.train(straight)

    class Interrupted(Exception):
        pass

    interrupted = context_sft.setup(_config(context_manifests, tmp_path / "resumed", steps=6, **no_dev))
    sampler = interrupted.contexts

    def stop_at_4(step, utterances):  # a crash after the checkpoint of step 4
        if step == 4:
            raise Interrupted
        return sampler(step, utterances)

    interrupted.contexts = stop_at_4
    with pytest.raises(Interrupted):
        context_sft.train(interrupted)
    resumed = context_sft.setup(_config(context_manifests, tmp_path / "resumed", steps=6, **no_dev))
    assert resumed.sft.step == 4
    context_sft.train(resumed)
    assert resumed.sft.step == 6
    final, expected = resumed.sft.model.trainable_state_dict(), straight.sft.model.trainable_state_dict()
    assert all(torch.allclose(final[k], expected[k], atol=1e-6) for k in expected)
