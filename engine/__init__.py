"""Keyscribe engine: audio in, audio-conditioned LLM, transcripts out. No Qt here."""

__version__ = "0.1.0"
