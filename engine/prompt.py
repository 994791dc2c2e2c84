"""The transcription prompt, in one place.

The LLM's own chat template frames a system instruction and a user turn that
holds the optional context block (meeting description, relevant hotwords, the
tail of the transcript so far) and the audio. The audio sits at a placeholder:
the rendered prompt is split there, and the model splices the projected audio
embeddings between the two halves (SLAM-LLM's mask-based splicing). The
assistant turn is the transcript, ended by the tokenizer's end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.model.config import PromptConfig

AUDIO_MARKER = "<|audio|>"
IGNORE_INDEX = -100  # label value that cross-entropy skips


@dataclass(frozen=True)
class PromptContext:
    """What the user tells us about a recording, plus the transcript so far."""

    meeting: str = ""
    hotwords: tuple[str, ...] = ()
    history: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.meeting.strip() or self.hotwords or self.history.strip())


def _common_prefix_length(sequences: list[tuple[int, ...]]) -> int:
    """How many leading items all the sequences share."""
    length = min(len(seq) for seq in sequences)
    for i in range(length):
        if len({seq[i] for seq in sequences}) > 1:
            return i
    return length


def shared_opening(prefixes: list[tuple[int, ...]]) -> int:
    """``PromptBuilder.assemble``'s ``shared`` for a batch with these prompt prefixes: the opening all rows share,
    or every row's whole prefix, whichever leaves fewer positions for the LLM to compute. Each distinct opening
    is computed once (left-padded to ``shared``); the rest of each row's prefix is computed in the row. Joint
    context decoding's two halves (with and without the context) then each compute their prompt once, not once
    a row."""

    def cost(shared: int) -> int:
        openings = {prefix[:shared] for prefix in prefixes}
        return len(openings) * shared + sum(len(prefix) - min(shared, len(prefix)) for prefix in prefixes)

    return min((_common_prefix_length(prefixes), max(len(prefix) for prefix in prefixes)), key=cost)


@dataclass(frozen=True)
class PromptIds:
    prefix: tuple[int, ...]  # tokens before the audio
    suffix: tuple[int, ...]  # tokens after the audio, up to the start of the assistant turn


@dataclass(frozen=True)
class ModelInputs:
    """A padded batch of token ids with audio positions marked."""

    input_ids: torch.Tensor  # (B, L) placeholder id at audio positions
    attention_mask: torch.Tensor  # (B, L) 1 = real position
    audio_mask: torch.Tensor  # (B, L) True where an audio embedding goes
    labels: torch.Tensor | None  # (B, L) target ids, IGNORE_INDEX elsewhere


class PromptBuilder:
    def __init__(self, tokenizer, config: PromptConfig):
        if tokenizer.chat_template is None:
            raise ValueError("the tokenizer has no chat template; Keyscribe prompts are built with one")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end-of-sequence token")
        self.tokenizer = tokenizer
        self.config = config
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        # A special token other than the end token, which decoding drops from text: what fills out a batch's shorter
        # token histories for the logits processors (engine.speculative.batch_greedy_with_proposals); None if there is none.
        self.filler_id = min((i for i in tokenizer.all_special_ids if i != self.eos_id), default=None)

    def context_block(self, context: PromptContext) -> str:
        lines = []
        if context.meeting.strip():
            lines.append(f"About this recording: {context.meeting.strip()}")
        if context.hotwords:
            lines.append("Names and terms that may occur: " + ", ".join(context.hotwords))
        if context.history.strip():
            tail = context.history.strip()[-self.config.history_chars :]
            lines.append(f"Transcript so far: …{tail}" if len(tail) < len(context.history.strip()) else f"Transcript so far: {tail}")
        return "\n".join(lines)

    def render_text(self, context: PromptContext) -> str:
        block = self.context_block(context)
        user = (block + "\n\n" if block else "") + f"{self.config.task}\n{AUDIO_MARKER}"
        messages = [
            {"role": "system", "content": self.config.system},
            {"role": "user", "content": user},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def render(self, context: PromptContext) -> PromptIds:
        text = self.render_text(context)
        before, marker, after = text.partition(AUDIO_MARKER)
        if not marker:
            raise ValueError("the chat template dropped the audio placeholder")
        return PromptIds(prefix=tuple(self._encode(before)), suffix=tuple(self._encode(after)))

    def target_ids(self, text: str) -> list[int]:
        return self._encode(text.strip()) + [self.eos_id]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def assemble(
        self,
        prompts: list[PromptIds],
        audio_lengths: list[int],
        targets: list[list[int]] | None = None,
        shared: int = 0,
    ) -> ModelInputs:
        """Lay out prefix · audio · suffix (· target) per row and pad to one length.

        Rows with targets (training) are padded on the right; rows without
        (generation) on the left, so every row's next token comes last. With
        ``shared`` (generation only), the first ``shared`` positions of every row
        hold the opening of its prefix (its first ``shared`` tokens, or all of a
        shorter prefix, left-padded to ``shared``), and the padding goes after
        them: rows with the same opening then hold it at the same positions, and
        one computed key/value cache of each distinct opening serves them all
        (AcLLM.generate_from_frames).
        """
        if shared and (targets is not None or shared > max(len(p.prefix) for p in prompts)):
            raise ValueError(f"shared={shared}: only for generation, and no longer than the longest prompt prefix")
        rows, attended, masks, labels = [], [], [], []
        for i, (prompt, n_audio) in enumerate(zip(prompts, audio_lengths, strict=True)):
            target = list(targets[i]) if targets is not None else []
            lead = max(0, shared - len(prompt.prefix))  # a prefix shorter than the shared positions sits at their end
            ids = [self.pad_id] * lead + [*prompt.prefix, *([self.pad_id] * n_audio), *prompt.suffix, *target]
            is_audio = [False] * (lead + len(prompt.prefix)) + [True] * n_audio + [False] * (len(prompt.suffix) + len(target))
            label = [IGNORE_INDEX] * (len(ids) - len(target)) + target
            rows.append(ids)
            attended.append([0] * lead + [1] * (len(ids) - lead))
            masks.append(is_audio)
            labels.append(label)
        width = max(len(r) for r in rows)
        left = targets is None

        def pad(seq: list, value) -> list:
            filler = [value] * (width - len(seq))
            return seq[:shared] + filler + seq[shared:] if left else seq + filler

        return ModelInputs(
            input_ids=torch.tensor([pad(r, self.pad_id) for r in rows], dtype=torch.long),
            attention_mask=torch.tensor([pad(m, 0) for m in attended], dtype=torch.long),
            audio_mask=torch.tensor([pad(m, False) for m in masks], dtype=torch.bool),
            labels=None if left else torch.tensor([pad(lab, IGNORE_INDEX) for lab in labels], dtype=torch.long),
        )
