"""The audio-conditioned LLM: Whisper encoder -> frame-stacking adapter -> decoder-only LLM."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from engine.biasing import ContextMix, HotwordBoost, TokenTrie
from engine.ctc_fusion import CTCPrefixFusion, CTCPrefixScorer, log_normalisers
from engine.decoding import DecodingOptions
from engine.draft import FollowDraft, Slot
from engine.hotwords import heard_spans
from engine.lexicon import LexiconOptions, LexiconSearch, WordLM, words_of
from engine.model.adapter import FrameStackProjector
from engine.model.config import AcLLMConfig
from engine.model.encoder import ENCODER_STRIDE, HOP_SAMPLES, SAMPLE_RATE, Features, LogMelFrontend, SpeechEncoder
from engine.model.runtime import Runtime
from engine.prompt import IGNORE_INDEX, ModelInputs, PromptBuilder, PromptContext, shared_opening
from engine.speculative import batch_greedy_with_proposals, greedy_with_draft

ENCODER_FRAME_S = ENCODER_STRIDE * HOP_SAMPLES / SAMPLE_RATE  # 20 ms per encoder frame
LEXICON_SEARCHES_KEPT = 4  # lexicon tries kept per model, one per hotword list (a job needs one; a bench switches lists)


@dataclass(frozen=True)
class AudioEncoding:
    frames: torch.Tensor  # (B, T, C) encoder frames, 50 Hz
    frame_lengths: torch.Tensor  # (B,)
    embeds: torch.Tensor  # (B, N, D) LLM-space audio embeddings, 10 Hz for k=5
    embed_lengths: torch.Tensor  # (B,)


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # CE + λ·CTC + μ·token CTC
    lm_loss: torch.Tensor | None  # None when the LLM was skipped (adapter alignment steps)
    ctc_loss: torch.Tensor | None
    token_ctc_loss: torch.Tensor | None = None


@dataclass(frozen=True)
class TokenTargets:
    """Transcripts as LLM token ids for the adapter's token CTC, over a subset of the vocabulary."""

    vocab: torch.Tensor  # (V',) sorted LLM token ids the logits are computed over
    targets: torch.Tensor  # (B, S) 1 + index into vocab (0 pads; the blank is 0 too)
    lengths: torch.Tensor  # (B,)


@dataclass(frozen=True)
class Hypothesis:
    text: str
    token_ids: tuple[int, ...]
    avg_logprob: float


class CharCTC:
    """Maps text to and from the CTC head's character alphabet (index 0 = blank)."""

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("the CTC alphabet has repeated characters")
        self.alphabet = alphabet
        self.index = {ch: i + 1 for i, ch in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def normalize(self, text: str) -> str:
        return " ".join(words_of(text, self.alphabet))

    def encode(self, text: str) -> list[int]:
        return [self.index[ch] for ch in self.normalize(text)]

    def greedy_decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best path: argmax per frame, merge repeats, drop blanks. (B, T, V) -> B strings."""
        best = log_probs.argmax(dim=-1)  # (B, T)
        texts = []
        for row, length in zip(best.tolist(), lengths.tolist(), strict=True):
            chars, previous = [], 0
            for idx in row[:length]:
                if idx != previous and idx != 0:
                    chars.append(self.alphabet[idx - 1])
                previous = idx
            texts.append(re.sub(r" +", " ", "".join(chars)).strip())
        return texts


class _StopWhen(StoppingCriteria):
    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), bool(self.should_stop()), dtype=torch.bool, device=input_ids.device)


def _ctc(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """CTC loss with blank 0 from batch-first log-probabilities (B, T, V)."""
    return nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, input_lengths, target_lengths, blank=0, zero_infinity=True)


def _chosen_log_probs(sequences: torch.Tensor, scores: list[torch.Tensor]) -> torch.Tensor:
    """log_softmax(scores[i])[b, sequences[b, i]] for every step i: (B, steps).

    What transformers' compute_transition_scores(normalize_logits=True) gives for greedy decoding, one
    step at a time: it stacks every step's (B, V) scores first, 160 MB more peak memory for a batch of
    16 over SmolLM2's vocabulary (the bench's peak RSS went from 1669 MB to 1510 MB).
    """
    if not scores:
        return torch.zeros(sequences.shape[0], 0)
    return torch.stack([s.float().log_softmax(dim=-1).gather(1, sequences[:, i : i + 1])[:, 0] for i, s in enumerate(scores)], dim=1)


def _printable(text: str) -> str:
    """Transcript text: control characters dropped, whitespace runs (newlines too) made single spaces."""
    return " ".join("".join(ch for ch in text if ch.isprintable() or ch.isspace()).split())


class AcLLM(nn.Module):
    def __init__(self, config: AcLLMConfig, encoder: SpeechEncoder, adapter: FrameStackProjector, llm: nn.Module, tokenizer, runtime: Runtime):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.adapter = adapter
        self.llm = llm
        self.tokenizer = tokenizer
        self.runtime = runtime
        self.prompt = PromptBuilder(tokenizer, config.prompt)
        self.ctc = CharCTC(config.encoder.ctc_alphabet)
        self.frontend = LogMelFrontend(encoder.whisper.config.num_mel_bins, trimmed=encoder.trimmed)
        self.lora_merged = False
        self.word_lm: WordLM | None = None  # the lexicon drafts' language model, from the checkpoint's word_lm.json.gz
        self._lexicon_searches: dict[tuple, LexiconSearch] = {}

    # ----------------------------------------------------------------- parameters
    def merge_lora(self) -> bool:
        """Fold the LoRA weights into the LLM's own, for inference; returns whether it did.

        The outputs stay the same (the sample's transcript is identical) and each adapted
        projection becomes one matmul instead of three: on the 2-core CPU, decoding the sample's
        first 4 chunks took 3.05 s instead of 3.21 s (best of 3). Training needs LoRA apart, so
        only engine.model.load.load_model, the inference entry point, calls this; bitsandbytes'
        4- and 8-bit weights are left alone (merging would quantize them once more).
        """
        if not hasattr(self.llm, "merge_and_unload") or self.runtime.bitsandbytes:
            return False
        self.llm = self.llm.merge_and_unload()
        self.lora_merged = True
        return True

    def prepare_inference(self) -> None:
        """What load_model does after loading: merge LoRA; on a CPU, int8 makes the LLM's linears int8 and
        fp32 makes them FewRowsLinear (the same weights, a faster matmul layout for decoding)."""
        self.merge_lora()
        if self.runtime.device == "cpu" and self.runtime.quantization == "int8":
            from engine.model.int8 import quantize_linears

            quantize_linears(self.llm)
        elif self.runtime.device == "cpu" and self.runtime.quantization == "fp32":
            from engine.model.cpu_linear import use_few_rows_linears

            use_few_rows_linears(self.llm)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The parts training changes: adapter, CTC head, LoRA (and the encoder if trained)."""
        if self.lora_merged:
            raise ValueError("this model's LoRA is merged for inference; load it with load_checkpoint to train or save it")
        keep = ("adapter.", "encoder.ctc_head.")
        if self.config.encoder.trainable:
            keep = keep + ("encoder.whisper.",)
        state = {}
        for name, tensor in self.state_dict().items():
            if name.startswith(keep) or (name.startswith("llm.") and "lora_" in name):
                state[name] = tensor
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = self.trainable_state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise KeyError(f"trained weights do not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise KeyError(f"trained weight {name} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[name].shape)}")
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].dtype))

    # ----------------------------------------------------------------- audio path
    @property
    def device(self) -> torch.device:
        return self.adapter.proj[0].weight.device

    def encode(self, features: Features) -> AudioEncoding:
        mel = features.mel.to(self.device)
        lengths = features.mel_lengths.to(self.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.encoder.trainable):
            frames, frame_lengths = self.encoder(mel, lengths)  # (B, T, C)
        embeds, embed_lengths = self.adapter(frames, frame_lengths)  # (B, N, D)
        return AudioEncoding(frames, frame_lengths, embeds, embed_lengths)

    def splice(self, inputs: ModelInputs, audio: AudioEncoding) -> torch.Tensor:
        """Token embeddings with the audio embeddings written at the placeholder positions."""
        input_ids = inputs.input_ids.to(self.device)
        audio_mask = inputs.audio_mask.to(self.device)
        token_embeds = self.llm.get_input_embeddings()(input_ids)  # (B, L, D)
        n_audio = audio.embeds.shape[1]
        valid = torch.arange(n_audio, device=self.device)[None, :] < audio.embed_lengths[:, None]  # (B, N)
        if int(valid.sum()) != int(audio_mask.sum()):
            raise ValueError(f"prompt has {int(audio_mask.sum())} audio positions but the audio gives {int(valid.sum())} embeddings")
        audio_flat = audio.embeds[valid].to(token_embeds.dtype)  # (ΣN, D), row-major like masked_scatter
        return token_embeds.masked_scatter(audio_mask[..., None], audio_flat)

    # ----------------------------------------------------------------- training
    def forward(
        self,
        features: Features,
        inputs: ModelInputs,
        ctc_targets: torch.Tensor | None = None,  # (B, S) padded with 0
        ctc_target_lengths: torch.Tensor | None = None,  # (B,)
    ) -> LossOutput:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.encoder.trainable):
            frames, frame_lengths = self.encoder(features.mel.to(self.device), features.mel_lengths.to(self.device))
        return self.loss_from_frames(frames, frame_lengths, inputs, ctc_targets, ctc_target_lengths)

    def loss_from_frames(
        self,
        frames: torch.Tensor,  # (B, T, C) encoder output, e.g. from a cache of a frozen encoder
        frame_lengths: torch.Tensor,  # (B,)
        inputs: ModelInputs,
        ctc_targets: torch.Tensor | None = None,
        ctc_target_lengths: torch.Tensor | None = None,
        token_targets: TokenTargets | None = None,
        use_llm: bool = True,
    ) -> LossOutput:
        """LLM cross-entropy on the transcript tokens, + λ·CTC on the encoder head, + μ·token CTC on the adapter.

        ``use_llm=False`` skips the LLM (alignment steps): only the CTC terms train.
        """
        frames = frames.to(self.device)
        frame_lengths = frame_lengths.to(self.device)
        embeds, embed_lengths = self.adapter(frames, frame_lengths)  # (B, N, D)
        terms: list[torch.Tensor] = []
        lm_loss = ctc_loss = token_ctc_loss = None
        if use_llm:
            if inputs.labels is None:
                raise ValueError("the training loss needs labels; use generate() to decode")
            audio = AudioEncoding(frames, frame_lengths, embeds, embed_lengths)
            logits, targets, _ = self._target_logits(inputs, audio)  # (n_targets, V), (n_targets,)
            lm_loss = nn.functional.cross_entropy(logits.float(), targets)
            terms.append(lm_loss)
        if ctc_targets is not None and self.config.ctc_weight > 0:
            log_probs = self.encoder.ctc_log_probs(frames, frame_lengths)  # (B, T, V)
            ctc_loss = _ctc(log_probs, ctc_targets.to(self.device), frame_lengths, ctc_target_lengths.to(self.device))
            terms.append(self.config.ctc_weight * ctc_loss)
        if token_targets is not None and self.config.token_ctc_weight > 0:
            table = self.llm.get_input_embeddings().weight[token_targets.vocab.to(self.device)]  # (V', D)
            log_probs = self.adapter.token_log_probs(embeds, table)  # (B, N, 1+V')
            token_ctc_loss = _ctc(log_probs, token_targets.targets.to(self.device), embed_lengths, token_targets.lengths.to(self.device))
            terms.append(self.config.token_ctc_weight * token_ctc_loss)
        if not terms:
            raise ValueError("nothing to train: use_llm=False needs CTC or token-CTC targets with a positive weight")
        return LossOutput(loss=sum(terms), lm_loss=lm_loss, ctc_loss=ctc_loss, token_ctc_loss=token_ctc_loss)

    def sequence_log_probs(
        self,
        frames: torch.Tensor,  # (B, T, C) encoder frames, one row per scored sequence
        frame_lengths: torch.Tensor,  # (B,)
        contexts: list[PromptContext],
        target_ids: list[list[int]],
    ) -> torch.Tensor:
        """Teacher-forced log P(target | prompt, audio) per row, summed over its tokens: (B,), with gradients.

        Each row's ``target_ids`` are scored exactly as given: append ``self.prompt.eos_id`` (as
        ``PromptBuilder.target_ids`` does) to score a finished transcript. Used by MWER training,
        which scores every N-best hypothesis of an utterance against the same audio.
        """
        if not len(contexts) == len(target_ids) == frames.shape[0]:
            raise ValueError(f"got {frames.shape[0]} audio rows, {len(contexts)} contexts and {len(target_ids)} target sequences")
        frames = frames.to(self.device, self.adapter.proj[0].weight.dtype)
        frame_lengths = frame_lengths.to(self.device)
        embeds, embed_lengths = self.adapter(frames, frame_lengths)  # (B, N, D)
        audio = AudioEncoding(frames, frame_lengths, embeds, embed_lengths)
        inputs = self.prompt.assemble([self.prompt.render(c) for c in contexts], embed_lengths.tolist(), target_ids)
        logits, targets, rows = self._target_logits(inputs, audio)  # (n_targets, V), (n_targets,), (n_targets,)
        token_log_probs = -nn.functional.cross_entropy(logits.float(), targets, reduction="none")  # (n_targets,)
        return torch.zeros(frames.shape[0], device=self.device).index_add(0, rows, token_log_probs)

    def _target_logits(self, inputs: ModelInputs, audio: AudioEncoding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced logits where a label follows: (n_targets, V), the labels (n_targets,), their rows (n_targets,)."""
        labels = inputs.labels.to(self.device)
        hidden = self.llm_hidden_states(self.splice(inputs, audio), inputs.attention_mask.to(self.device))  # (B, L, D)
        # Only positions that predict a transcript token need the (large) vocabulary projection.
        predicts = labels[:, 1:] != IGNORE_INDEX  # (B, L-1)
        logits = self.llm.get_output_embeddings()(hidden[:, :-1][predicts])  # (n_targets, V)
        return logits, labels[:, 1:][predicts], predicts.nonzero()[:, 0]

    def llm_hidden_states(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states of the decoder (B, L, D), without the vocabulary projection."""
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, output_hidden_states=True, logits_to_keep=1)
        return out.hidden_states[-1]

    def ctc_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [self.ctc.encode(t) for t in texts]
        lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
        targets = torch.zeros(len(encoded), max(1, int(lengths.max())), dtype=torch.long)
        for i, seq in enumerate(encoded):
            targets[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return targets, lengths

    def token_ctc_batch(self, texts: list[str], vocab: torch.Tensor) -> TokenTargets:
        """Token targets over ``vocab`` (sorted ids); every token of the texts must be in it."""
        encoded = [self.prompt.target_ids(t)[:-1] for t in texts]  # the transcript tokens, no end token
        flat = torch.tensor([i for seq in encoded for i in seq], dtype=torch.long)
        positions = torch.searchsorted(vocab, flat)
        if flat.numel() and (positions.max() >= len(vocab) or not torch.equal(vocab[positions], flat)):
            raise ValueError("a transcript token is missing from the token-CTC vocabulary")
        lengths = torch.tensor([len(seq) for seq in encoded], dtype=torch.long)
        targets = torch.zeros(len(encoded), max(1, int(lengths.max())), dtype=torch.long)
        offset = 0
        for row, length in enumerate(lengths.tolist()):
            targets[row, :length] = positions[offset : offset + length] + 1
            offset += length
        return TokenTargets(vocab=vocab, targets=targets, lengths=lengths)

    # ----------------------------------------------------------------- inference
    @torch.inference_mode()
    def encode_frames(self, features: Features) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames (B, T, C) and lengths (B,), computed once and shared by CTC and the LLM."""
        return self.encoder(features.mel.to(self.device), features.mel_lengths.to(self.device))

    @torch.inference_mode()
    def ctc_hypotheses(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        """The CTC head's first-pass text per chunk (lower case, no punctuation)."""
        return self.ctc.greedy_decode(self.encoder.ctc_log_probs(frames, frame_lengths), frame_lengths)

    @torch.inference_mode()
    def ctc_log_probs(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> list:
        """The character CTC head's log-probabilities per chunk, trimmed to its length: B numpy arrays (T_b, V)."""
        log_probs = self.encoder.ctc_log_probs(frames.to(self.device), frame_lengths).float().cpu().numpy()  # (B, T, V)
        return [row[:length] for row, length in zip(log_probs, frame_lengths.tolist(), strict=True)]

    @torch.inference_mode()
    def token_ctc_hypotheses(self, frames: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        """The adapter's token-CTC best path over the whole LLM vocabulary, decoded to text."""
        frames = frames.to(self.device, self.adapter.proj[0].weight.dtype)
        embeds, lengths = self.adapter(frames, frame_lengths.to(self.device))
        return [_printable(self.tokenizer.decode(ids, skip_special_tokens=True)) for ids in self._token_drafts(embeds, lengths)]

    @torch.inference_mode()
    def generate(self, features: Features, contexts: list[PromptContext], options: DecodingOptions) -> list[Hypothesis]:
        return self.generate_from_frames(*self.encode_frames(features), contexts, options)

    @torch.inference_mode()
    def generate_from_frames(
        self,
        frames: torch.Tensor,
        frame_lengths: torch.Tensor,
        contexts: list[PromptContext],
        options: DecodingOptions,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Hypothesis]:
        """Decode from encoder frames (B, T, C); the token budget follows the longest clip.

        Returns ``options.n_best`` hypotheses per input, input-major (all of input 0's first), best first.

        ``should_stop`` is polled after every decoding step; when it returns True decoding ends
        there (the caller discards the partial text), so a cancel takes effect within one step.
        """
        if len(contexts) != frames.shape[0]:
            raise ValueError(f"got {len(contexts)} prompt contexts for {frames.shape[0]} audio chunks")
        drafts = self._lexicon_drafts(frames, frame_lengths, contexts, options)
        drafted = [i for i, draft in enumerate(drafts or []) if draft is not None]
        if not drafted or len(drafted) == len(contexts):
            return self._generate(frames, frame_lengths, contexts, options, should_stop, drafts if drafted else None)
        # Chunks with hotwords in play are decoded without a draft (DecodingOptions.draft_with_hotwords): two passes,
        # put back in order.
        by_chunk: dict[int, list[Hypothesis]] = {}
        free = [i for i in range(len(contexts)) if drafts[i] is None]
        for rows, row_drafts in ((drafted, [drafts[i] for i in drafted]), (free, None)):
            index = torch.tensor(rows, device=frames.device)
            hyps = self._generate(frames[index], frame_lengths[index.to(frame_lengths.device)], [contexts[i] for i in rows], options, should_stop, row_drafts)
            for k, i in enumerate(rows):
                by_chunk[i] = hyps[k * options.n_best : (k + 1) * options.n_best]
        return [hyp for i in range(len(contexts)) for hyp in by_chunk[i]]

    def _generate(
        self,
        frames: torch.Tensor,
        frame_lengths: torch.Tensor,
        contexts: list[PromptContext],
        options: DecodingOptions,
        should_stop: Callable[[], bool] | None,
        drafts: list[list[Slot]] | None,
    ) -> list[Hypothesis]:
        """generate_from_frames for chunks that all have a lexicon draft, or (``drafts`` None) none."""
        frames, frame_lengths = frames.to(self.device, self.adapter.proj[0].weight.dtype), frame_lengths.to(self.device)
        embeds, embed_lengths = self.adapter(frames, frame_lengths)
        audio = AudioEncoding(frames, frame_lengths, embeds, embed_lengths)
        prompts = [self.prompt.render(c) for c in contexts]
        duration_s = float(frame_lengths.max()) * ENCODER_FRAME_S
        if drafts is None and self._can_draft(options, contexts):
            inputs = self.prompt.assemble(prompts, embed_lengths.tolist())
            return self._verify_drafts(inputs, audio, contexts, options, duration_s, should_stop)
        n_inputs = len(contexts)
        processors = LogitsProcessorList()
        if self._joint(options, contexts):
            # Joint decoding: every chunk again without its context, mixed in by ContextMix; only the first half is kept.
            audio = AudioEncoding(*(torch.cat([t, t]) for t in (frames, frame_lengths, embeds, embed_lengths)))
            prompts = prompts + [self.prompt.render(PromptContext())] * n_inputs
            processors.append(ContextMix(options.context_weight))
            contexts = contexts + contexts  # both halves get the same hotword boost, so they stay in step
        # The prompts' openings (system message, context) are computed once per distinct opening, not once per row
        # (engine.prompt.shared_opening). Greedy only: beam search copies its inputs per beam.
        shared = shared_opening([p.prefix for p in prompts]) if options.beam_size == 1 and len(prompts) > 1 else 0
        inputs = self.prompt.assemble(prompts, audio.embed_lengths.tolist(), shared=shared)
        boost = self._hotword_boost(contexts, options)
        processors.extend(boost or [])
        follow = None
        if drafts is not None:  # after the boost: it reads which tokens go on with a listed term
            drafts = drafts + drafts if len(contexts) > n_inputs else drafts
            follow = FollowDraft(
                drafts, self.tokenizer, self.ctc.alphabet, self.prompt.eos_id, options.draft_bonus, options.ctc_top_k, options.beam_size,
                boost[0] if boost else None, options.lexicon.alternative_penalty, options.draft_join_penalty,
            )
            processors.append(follow)
        elif self._fuse_ctc(options):  # last: it reads the others' scores; joint decoding's two halves hear the same audio
            processors.append(self._ctc_fusion(embeds, embed_lengths, options, boost[0] if boost else None, len(contexts) // n_inputs))
        prefix = self._prefix_cache(inputs.input_ids[:, :shared], inputs.attention_mask[:, :shared]) if shared else None
        if options.verify_drafts and self._plain_greedy(options) and self.prompt.filler_id is not None:
            # Without a draft the confidences are those of the processed scores, as generate() gives them below.
            results, _ = batch_greedy_with_proposals(
                self.llm, self.splice(inputs, audio), inputs.attention_mask, options.max_new_tokens(duration_s), self.prompt.eos_id,
                self.prompt.filler_id, follow.proposal if follow is not None else None, processors or None, should_stop, prefix, shared,
                options.verify_block_tokens, processed_log_probs=follow is None,
            )
            return [self._hypothesis(r.token_ids, step_log_probs=r.log_probs) for r in results[:n_inputs]]
        generate_kwargs = options.generate_kwargs(duration_s, self.prompt.eos_id, self.prompt.pad_id)
        raw_confidence = drafts is not None and options.beam_size == 1
        if raw_confidence:
            # A token's confidence is then the LLM's own probability of it, not one the draft's bonus inflated
            # (a word the draft put in against the LLM's belief should look doubtful in the transcript).
            generate_kwargs.update(output_scores=False, output_logits=True)
        out = self.llm.generate(
            inputs_embeds=self.splice(inputs, audio),
            attention_mask=inputs.attention_mask.to(self.device),
            past_key_values=prefix,
            stopping_criteria=StoppingCriteriaList([_StopWhen(should_stop)]) if should_stop is not None else None,
            logits_processor=processors or None,
            **generate_kwargs,
        )
        kept_rows = n_inputs * options.n_best  # with joint decoding, the context-free half is dropped
        sequences = out.sequences[:kept_rows]  # (B, new) — with inputs_embeds only new tokens come back
        if options.beam_size > 1:
            scores = out.sequences_scores[:kept_rows].tolist()
            return [self._hypothesis(ids, score=score) for ids, score in zip(sequences.tolist(), scores, strict=True)]
        step = _chosen_log_probs(sequences, [s[:kept_rows] for s in (out.logits if raw_confidence else out.scores)])  # (B, new)
        return [self._hypothesis(ids, step_log_probs=row) for ids, row in zip(sequences.tolist(), step.tolist(), strict=True)]

    def _lexicon_drafts(
        self, frames: torch.Tensor, frame_lengths: torch.Tensor, contexts: list[PromptContext], options: DecodingOptions
    ) -> list[list[Slot] | None] | None:
        """Each chunk's lexicon draft (engine/lexicon.py) from the character CTC, or None without a word LM or
        with the draft off. A chunk with hotwords, or of a job with a hotword list, gets None (no draft)
        unless ``options.draft_with_hotwords``; then a draft word read from frames where one of its hotwords
        is heard is None: an open slot the LLM fills on its own, so it can write the term the lexicon cannot spell."""
        if not options.draft_bonus or self.word_lm is None:
            return None
        listed = bool(options.draft_terms)  # the job has a hotword list, though a chunk's share of it may be empty
        wanted = [options.draft_with_hotwords or not (listed or context.hotwords) for context in contexts]
        if not any(wanted):  # no chunk is drafted: the CTC posteriors are not needed
            return [None] * len(contexts)
        log_probs = self.ctc_log_probs(frames, frame_lengths)
        drafts: list[list[Slot] | None] = []
        for context, chunk, drafted in zip(contexts, log_probs, wanted, strict=True):
            if not drafted:
                drafts.append(None)
                continue
            terms = options.draft_terms if options.draft_terms is not None else tuple(context.hotwords)
            words = self.lexicon_search(terms, options.lexicon).decode_with_alternatives(chunk, context.hotwords)
            heard = heard_spans(context.hotwords, chunk, self.ctc.encode, options.lexicon.open_score)
            drafts.append([None if any(a <= last and first <= b for a, b in heard) else w if len(w) > 1 else w[0] for w, first, last in words])
        return drafts

    def lexicon_search(self, hotwords: tuple[str, ...], options: LexiconOptions) -> LexiconSearch:
        """The lexicon search for these hotwords; the last few are kept, since building one takes about a second."""
        key = (hotwords, options)
        search = self._lexicon_searches.pop(key, None) or LexiconSearch(self.word_lm, self.ctc.alphabet, options, hotwords)
        self._lexicon_searches[key] = search  # most recently used last
        while len(self._lexicon_searches) > LEXICON_SEARCHES_KEPT:
            self._lexicon_searches.pop(next(iter(self._lexicon_searches)))
        return search

    def _prefix_cache(self, ids: torch.Tensor, attention_mask: torch.Tensor):
        """The LLM's key/value cache of the rows' openings ``ids`` (B, P), left-padded where ``attention_mask`` is 0:
        each distinct opening is computed once, then copied to the rows that have it."""
        keys = [tuple(row) for row in torch.cat([ids, attention_mask], dim=1).tolist()]
        distinct = list(dict.fromkeys(keys))
        firsts = torch.tensor([keys.index(key) for key in distinct])
        mask = attention_mask[firsts].to(self.device)  # (G, P)
        embeds = self.llm.get_input_embeddings()(ids[firsts].to(self.device))  # (G, P, D)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = self.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_select_indices(torch.tensor([distinct.index(key) for key in keys], device=self.device))
        return cache

    def _hypothesis(self, ids: list[int], score: float | None = None, step_log_probs: list[float] | None = None) -> Hypothesis:
        """One decoded row: its text up to the end token, scored by the beam's ``score`` or, for greedy
        decoding, by the mean of ``step_log_probs`` over the content and the end token."""
        n = self._content_length(ids)
        if score is None:
            kept = step_log_probs[: n + 1]  # the end token's probability counts too
            score = sum(kept) / max(1, len(kept))
        text = _printable(self.tokenizer.decode(ids[:n], skip_special_tokens=True))
        return Hypothesis(text=text, token_ids=tuple(ids[:n]), avg_logprob=float(score))

    @staticmethod
    def _joint(options: DecodingOptions, contexts: list[PromptContext]) -> bool:
        """Whether to decode jointly with and without the context (engine.biasing.ContextMix)."""
        return options.context_weight < 1.0 and any(not c.is_empty for c in contexts)

    @staticmethod
    def _plain_greedy(options: DecodingOptions) -> bool:
        """Greedy decoding whose only changes to the LLM's scores are our logits processors (what verification reproduces)."""
        return options.beam_size == 1 and options.temperature == 0 and options.repetition_penalty == 1.0 and not options.no_repeat_ngram_size

    def _can_draft(self, options: DecodingOptions, contexts: list[PromptContext]) -> bool:
        """Whether verifying the token-CTC draft gives exactly what generate() would (plain greedy, no joint decoding)."""
        return options.ctc_draft and self._plain_greedy(options) and not self._joint(options, contexts) and self.config.token_ctc_weight > 0 and not options.ctc_weight

    def _fuse_ctc(self, options: DecodingOptions) -> bool:
        """Whether to decode jointly with the token CTC (a model trained without one has only an untrained head)."""
        return options.ctc_weight > 0 and self.config.token_ctc_weight > 0

    def _ctc_fusion(
        self, embeds: torch.Tensor, lengths: torch.Tensor, options: DecodingOptions, hotwords: HotwordBoost | None = None, copies: int = 1
    ) -> CTCPrefixFusion:
        """The fusion for the chunks ``embeds``, decoded ``copies`` times over in one batch (the scorers are shared)."""
        queries, keys = self.adapter.token_logit_parts(embeds, self.llm.get_input_embeddings().weight)
        rows = [row[:length] for row, length in zip(queries, lengths.tolist(), strict=True)]
        scorers = [CTCPrefixScorer(row, keys, norm) for row, norm in zip(rows, log_normalisers(rows, keys), strict=True)]
        return CTCPrefixFusion(scorers * copies, options.ctc_weight, self.prompt.eos_id, options.ctc_top_k, options.beam_size, hotwords)

    def _verify_drafts(
        self, inputs: ModelInputs, audio: AudioEncoding, contexts: list[PromptContext], options: DecodingOptions,
        duration_s: float, should_stop: Callable[[], bool] | None,
    ) -> list[Hypothesis]:
        """Greedy decoding, one chunk at a time, that accepts the agreeing prefix of its token-CTC draft per LLM pass."""
        spliced = self.splice(inputs, audio)  # (B, L, D), left-padded
        drafts = self._token_drafts(audio.embeds, audio.embed_lengths)
        hypotheses = []
        for row, (context, draft) in enumerate(zip(contexts, drafts, strict=True)):
            valid = inputs.attention_mask[row].bool().to(self.device)
            result = greedy_with_draft(
                self.llm, spliced[row : row + 1, valid], draft, options.max_new_tokens(duration_s), {self.prompt.eos_id},
                self._hotword_boost([context], options), should_stop,
            )
            hypotheses.append(self._hypothesis(result.token_ids, step_log_probs=result.log_probs))
        return hypotheses

    def _token_drafts(self, embeds: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """The adapter's token-CTC best path per chunk as LLM token ids (blanks and repeats removed)."""
        best = self.adapter.token_log_probs(embeds, self.llm.get_input_embeddings().weight).argmax(dim=-1)  # (B, N)
        drafts = []
        for row, length in zip(best.tolist(), lengths.tolist(), strict=True):
            ids, previous = [], 0
            for index in row[:length]:
                if index != previous and index != 0:
                    ids.append(index - 1)
                previous = index
            drafts.append(ids)
        return drafts

    def _hotword_boost(self, contexts: list[PromptContext], options: DecodingOptions) -> LogitsProcessorList | None:
        if not any(c.hotwords for c in contexts):
            return None
        # Callers that filter long lists per chunk (Transcriber) settle the automatic bonus on the whole list first.
        bonus = options.boost_for(max(len(c.hotwords) for c in contexts))
        if bonus <= 0:
            return None
        tries = [TokenTrie.for_hotwords(self.tokenizer, c.hotwords) for c in contexts]
        return LogitsProcessorList([HotwordBoost(tries, bonus, num_beams=options.beam_size)])

    def _content_length(self, ids: list[int]) -> int:
        """Number of tokens before the first end/pad token."""
        for i, token in enumerate(ids):
            if token in (self.prompt.eos_id, self.prompt.pad_id):
                return i
        return len(ids)
