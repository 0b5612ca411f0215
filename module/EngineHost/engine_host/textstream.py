"""Completion text of one request: stop strings and what may be streamed yet.

Text that could still turn out to be the start of a stop string is held back from the stream (the
final text excludes the stop string, so the stream must never have sent it).
"""
from __future__ import annotations


class TextStream:
    def __init__(self, detokenizer, stop: tuple):
        self._detokenizer = detokenizer
        self._stop = stop
        self._holdback = max((len(s) for s in stop), default=1) - 1
        self.text = ""
        self._sent = 0
        self.stopped = False  # a stop string ended the text

    def add(self, token_id: int) -> bool:
        """Append one token; True when a stop string now ends the completion."""
        delta = self._detokenizer.add(token_id)
        if not delta:
            return False
        old_len = len(self.text)
        self.text += delta
        hits = [i for i in (self.text.find(s, max(0, old_len - len(s) + 1)) for s in self._stop)
                if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            self.stopped = True
        return self.stopped

    def finish(self) -> None:
        """The completion ended: bytes of an incomplete character become U+FFFD, as in a full decode."""
        if not self.stopped:
            self.text += self._detokenizer.flush()

    def take_stream_text(self, final: bool) -> str:
        """Text not streamed yet that can no longer change; all of it once `final`."""
        upto = len(self.text) if final or self.stopped else len(self.text) - self._holdback
        if upto <= self._sent:
            return ""
        out = self.text[self._sent:upto]
        self._sent = upto
        return out
