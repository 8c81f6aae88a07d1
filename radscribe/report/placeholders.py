"""No report may carry a de-identification placeholder: a ban for each decoder, a filter for copied text.

IU X-ray's de-identification left "XXXX" in the training reports (also inside words: "x-XXXX",
"XXXX-a-XXXX"); MIMIC-CXR writes "___" and "[** **]". A writer that learned or copies those reports
must never emit them:

* the LoRA writer masks, at every decoding step, each token that would complete a run of three or more
  x's (:class:`PlaceholderBan`, a transformers logits processor; a BPE vocabulary spells "XXXX" in
  several ways: "XXXX", "XX"+"XX", "X"+"XXX" ...);
* the scratch decoder never scores the placeholder words of its vocabulary (:func:`banned_word_ids`);
* writers that copy reports (most-common, retrieval, an LLM server's answer) pass their text through
  :func:`strip_placeholders`, which mends the collocations whose hidden word is plain from the context
  ("chest x-XXXX" -> "chest x-ray", :func:`radscribe.data.iu_xray.clean_placeholders`) and drops every
  sentence that still holds one;
* the consistency guard drops any sentence that still carries one (:func:`has_placeholder`).
"""

from __future__ import annotations

import re
from typing import Sequence

from radscribe.data.iu_xray import clean_placeholders
from radscribe.knowledge.labeler import split_sentences

#: Text no generated report may hold: runs of x (IU), "___" / "[** **]" (MIMIC), the unknown-word token.
BANNED_TEXT = re.compile(r"x{3,}|_{3,}|\[\*\*|<unk>", re.IGNORECASE)


def has_placeholder(text: str) -> bool:
    """Whether ``text`` carries a de-identification placeholder or an unknown-word token."""
    return bool(BANNED_TEXT.search(text or ""))


def strip_placeholders(text: str) -> str:
    """``text`` with placeholders mended where the context names the word, and the sentences that still
    hold one dropped (the others word for word)."""
    if not has_placeholder(text):
        return text
    text = clean_placeholders(text, "repair")
    return " ".join(s for s in split_sentences(text) if not has_placeholder(s))


def banned_word_ids(words: Sequence[str]) -> list[int]:
    """Indices of the words of a word-level vocabulary that are placeholders ("xxxx", "x-xxxx", "<unk>")."""
    return [i for i, w in enumerate(words) if has_placeholder(w)]


def _x_runs(piece: str) -> tuple[int, int, int, bool]:
    """(leading, trailing, longest) run of x/X in a token's text, and whether it is all x's."""
    runs = [len(r) for r in re.findall(r"[xX]*", piece)]
    lead = len(piece) - len(piece.lstrip("xX"))
    trail = len(piece) - len(piece.rstrip("xX"))
    return lead, trail, max(runs, default=0), bool(piece) and lead == len(piece)


class PlaceholderBan:
    """A logits processor (``(input_ids, scores) -> scores``) that makes "xxx" impossible to generate.

    ``pieces[i]`` is the text of token ``i`` (byte-level BPE marks such as "Ġ" count as non-x). A token is
    masked when it holds a run of three x's itself, or when its leading x's would extend the x's at the
    end of the text so far to three or more. Single x's stay allowed ("10 x 8 mm", "x-ray")."""

    def __init__(self, pieces: Sequence[str]) -> None:
        import torch

        runs = [_x_runs(p or "") for p in pieces]
        self.n = len(pieces)
        self.trail = [r[1] for r in runs]
        self.all_x = [r[3] for r in runs]
        self.xlen = [len(p or "") for p in pieces]
        self.always = torch.tensor([r[2] >= 3 for r in runs], dtype=torch.bool)
        lead = torch.tensor([r[0] for r in runs])
        # row k: the mask after a trailing run of k x's (tokens with >= 3 - k leading x's); row 0: always
        self.table = torch.stack([self.always] + [self.always | (lead >= 3 - k) for k in (1, 2)])

    def trailing_x(self, ids: Sequence[int]) -> int:
        """Length of the run of x's at the end of the text spelled by ``ids``."""
        run = 0
        for t in reversed(list(ids)):
            t = int(t)
            if t >= self.n:
                break
            if self.all_x[t]:
                run += self.xlen[t]
                continue
            run += self.trail[t]
            break
        return run

    def __call__(self, input_ids, scores):
        import torch

        tails = input_ids[:, -8:].tolist()
        rows = torch.tensor([min(2, self.trailing_x(t)) for t in tails], dtype=torch.long)
        mask = self.table[rows]
        width = scores.shape[-1]
        if mask.shape[1] < width:  # ids past the tokenizer's vocabulary are never placeholders
            mask = torch.nn.functional.pad(mask, (0, width - mask.shape[1]))
        return scores.masked_fill(mask[:, :width], float("-inf"))


def token_pieces(tokenizer, vocab_size: int) -> list[str]:
    """The text of every token id below ``vocab_size`` ("" for ids the tokenizer does not know)."""
    n = len(tokenizer)
    pieces = [str(p) if p is not None else "" for p in tokenizer.convert_ids_to_tokens(list(range(min(n, vocab_size))))]
    return pieces + [""] * max(0, vocab_size - len(pieces))
