"""Sentence splitting for review text: rule-based, fast, no model download."""
from __future__ import annotations

import re

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "approx", "no", "ave", "blvd"}
# A sentence ends at . ! ? (or runs of them, or an ellipsis), optionally followed by closing quotes/brackets.
_INITIALS = re.compile(r"^(?:[a-z]\.)*[a-z]$")  # "J." or "U.S."
_BOUNDARY = re.compile(r"([.!?…]+[\"')\]]*)(\s+)")


def split_sentences(text: str) -> list[str]:
    """Split review text into sentences.

    Splits at newlines and at sentence-final punctuation followed by whitespace, except after common
    abbreviations ("Dr.", "St.", "e.g.") and single initials. Empty pieces are dropped; whitespace is collapsed.

    Example:
        >>> split_sentences("Great pho! The spring rolls were fresh... Dr. Lee liked it.")
        ['Great pho!', 'The spring rolls were fresh...', 'Dr. Lee liked it.']
    """
    sentences: list[str] = []
    for block in re.split(r"[\r\n]+", text):
        start = 0
        for m in _BOUNDARY.finditer(block):
            end = m.end(1)
            word = block[start:m.start(1)].rsplit(None, 1)[-1].lower() if block[start:m.start(1)].strip() else ""
            if m.group(1) == "." and (word in _ABBREVIATIONS or _INITIALS.match(word)):
                continue
            sentences.append(block[start:end])
            start = m.end()
        sentences.append(block[start:])
    return [" ".join(s.split()) for s in sentences if s.strip()]


def count_words(text: str) -> int:
    return len(text.split())
