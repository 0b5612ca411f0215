"""The double's tokenizer, shaped like a Hugging Face fast tokenizer (what vLLM hands out).

Ids 0, 1, 2 are <pad>, <s> (BOS) and </s> (EOS); byte b is id b + 3. encode() adds BOS, as Llama
tokenizers do with add_special_tokens=True.
"""
import codecs

PAD, BOS, EOS = 0, 1, 2
OFFSET = 3
VOCAB_SIZE = 256 + OFFSET


class ByteFallbackTokenizer:
    def __init__(self):
        self.bos_token_id, self.eos_token_id, self.pad_token_id = BOS, EOS, PAD
        self.vocab_size = VOCAB_SIZE
        self.max_token_id = VOCAB_SIZE - 1
        self.all_special_ids = [PAD, BOS, EOS]

    def __len__(self):
        return VOCAB_SIZE

    def encode(self, text: str, add_special_tokens: bool = True, **_kwargs) -> list:
        ids = [b + OFFSET for b in text.encode("utf-8")]
        return [BOS] + ids if add_special_tokens else ids

    def __call__(self, text: str, add_special_tokens: bool = True, **kwargs) -> dict:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        data = bytes(i - OFFSET for i in ids if i >= OFFSET)
        return data.decode("utf-8", errors="replace")


class IncrementalDetokenizer:
    """Text of the tokens so far; never ends inside a multi-byte character until finish()."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        if token_id < OFFSET:  # special tokens are skipped (skip_special_tokens=True)
            return ""
        return self._decoder.decode(bytes((token_id - OFFSET,)))

    def finish(self) -> str:
        return self._decoder.decode(b"", final=True)
