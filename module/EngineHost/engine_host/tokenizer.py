"""Tokenizers and incremental detokenizers (frontend side).

A detokenizer turns one token at a time into text that never ends inside a multi-byte character:
incomplete sequences are held back until the bytes that complete them arrive (or until `flush`).
"""
from __future__ import annotations

import codecs


class ByteTokenizer:
    """Prompt bytes are token ids (mod vocab); token ids map back to bytes (mod 256)."""

    def __init__(self, vocab_size: int, eos_token_id: int):
        self.vocab_size = vocab_size
        self.eos_token_id = eos_token_id
        self.name = "byte"

    def encode(self, text: str) -> list:
        return [b % self.vocab_size for b in text.encode("utf-8")]

    def detokenizer(self) -> "ByteDetokenizer":
        return ByteDetokenizer(self.eos_token_id)


class ByteDetokenizer:
    def __init__(self, eos_token_id: int):
        self._eos_token_id = eos_token_id  # generated under ignore_eos; it is no byte, so no text
        # The incremental decoder holds back an incomplete UTF-8 tail and replaces invalid bytes
        # exactly as bytes.decode(errors='replace') would on the whole output.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        if token_id == self._eos_token_id:
            return ""
        return self._decoder.decode(bytes((token_id % 256,)))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class HFTokenizer:
    """A transformers tokenizer found next to the model; imported only when the model has one."""

    def __init__(self, path: str, vocab_size: int, eos_token_id: int):
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self.vocab_size = vocab_size
        tokenizer_eos = self._tokenizer.eos_token_id
        self.eos_token_id = tokenizer_eos if tokenizer_eos is not None else eos_token_id
        self.name = f"hf:{type(self._tokenizer).__name__}"

    def encode(self, text: str) -> list:
        return list(self._tokenizer.encode(text))

    def detokenizer(self) -> "HFDetokenizer":
        return HFDetokenizer(self._tokenizer)


class HFDetokenizer:
    """Prefix/read-offset incremental decoding (as in TGI and vLLM).

    Decoding a token alone loses context (leading spaces of SentencePiece pieces, byte-fallback
    tokens), so each step decodes a short window and emits what the window adds to its prefix,
    holding back while the window ends in U+FFFD (an incomplete byte sequence).
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._ids: list = []
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: list) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return new_text[len(prefix_text):]
        return ""

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        self._prefix_offset = self._read_offset = len(self._ids)
        return new_text[len(prefix_text):]
