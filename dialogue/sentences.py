"""Article sentences for the offline answer: markdown split into self-contained sentences, and ranked against
the ticket by meaning (MiniLM cosine), word overlap and the kind of answer the question wants.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from dialogue.geo import with_regions

# What kind of answer a question wants, and what a sentence that gives it contains: a price for "how much",
# a duration for "how long". A sentence of the wanted kind gets ANSWER_TYPE_BONUS on top of its similarity.
ANSWER_TYPES = {
    "cost": (
        re.compile(r"\b(?:how much|cost|costs|price|pay|fee|fees|charge|charged|free)\b", re.I),
        re.compile(r"(?:€|\beur\b|\$)\s?\d|\d\s?(?:€|eur\b)|\bfree\b|\bno (?:fee|charge)\b|\d\s?%", re.I),
    ),
    "duration": (
        # "How long ...?", and money that has not arrived yet: how long it takes is the answer.
        re.compile(
            r"\b(?:how long|how fast|how quickly|when will|how many days|how soon|can'?t find|cannot find|"
            r"(?:has ?n'?t|have ?n'?t|not) (?:arrived|received|got|come|shown|showing|appeared))\b",
            re.I,
        ),
        re.compile(
            r"\b\d+(?:\s?(?:–|-|to)\s?\d+)?\s(?:business )?(?:days?|hours?|weeks?|minutes?)\b|\bnext day\b|"
            r"\b\d{1,2}\s?–\s?\d{1,2}\b",  # a table's "2–4" (its unit in the heading)
            re.I,
        ),
    ),
}
ANSWER_TYPE_BONUS = 0.1
STATUS_BONUS = 0.1  # a passage about the order's own status ("once shipped, return it") over a general one
STATUS_QUESTIONS = ("track_order", "delivery_period")
# A section headed by the customer's own question ("## Charged twice?") answers it: its paragraph's sentences get
# FAQ_BONUS when every word of the heading is in the ticket.
FAQ_BONUS = 0.3
FAQ_HEADING = re.compile(r"^([^:.!?]{3,80})\?: ")
WORD = re.compile(r"[a-z0-9]+")
STOP = set(
    "the a an and or to of in on for my i is it me you your we be can do does how what when with this that "
    "at by from are was will have has please".split()
)


def _words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOP and len(w) > 2}


NEGATION = re.compile(r"\b(?:never|not|no|cannot|can'?t|won'?t|isn'?t|aren'?t|doesn'?t|don'?t)\b", re.I)


def _asks_heading(paragraph: str, ticket_words: set[str]) -> bool:
    m = FAQ_HEADING.match(paragraph)
    heading = _words(m.group(1)) if m else set()
    return bool(heading) and heading <= ticket_words


QUESTION = re.compile(
    r"\s*(?:can|could|do|does|did|is|are|was|were|will|would|should|may|what|how|why|when|where|which|who)\b", re.I
)


@functools.lru_cache(maxsize=256)
def _stated_pairs(ticket: str) -> frozenset[str]:
    """Consecutive content-word pairs of the ticket's statements (its questions left out), read once per ticket."""
    pairs: set[str] = set()
    for clause in re.split(r"(?<=[.!?])\s+|\n+", ticket):
        if clause.rstrip().endswith("?") or QUESTION.match(clause):
            continue
        said = [w for w in WORD.findall(clause.lower()) if w not in STOP]
        pairs |= {f"{a} {b}" for a, b in zip(said, said[1:], strict=False) if len(a) > 2 and len(b) > 2}
    return frozenset(pairs)


def contradicts(sentence: str, ticket: str) -> bool:
    """True when `sentence` denies what the customer reports: a negation followed closely by two consecutive
    content words of what the ticket states. "I was charged twice" is not answered by "you will never be charged
    twice"; a question ("Can I pay cash on delivery?") is answered by a "no", so questions state nothing."""
    pairs = _stated_pairs(ticket)
    if not pairs:
        return False
    for m in NEGATION.finditer(sentence):
        after = [w for w in WORD.findall(sentence[m.end():].lower())[:5] if w not in STOP]
        if any(f"{a} {b}" in pairs for a, b in zip(after, after[1:], strict=False)):
            return True
    return False


BOLD_QUESTION = re.compile(r"\*\*([^*\n]+?)\?\*\*")
QUESTION_MARK = "\ue000"  # a private-use stand-in for a "?" that ends a bold label, not a sentence


def sentences_of(text: str) -> list[str]:
    """Plain sentences of a markdown article, in order; each table row becomes one sentence naming its columns.

    A section that opens with a paragraph carries its heading into that first sentence ("Methods we do not
    accept: Cash on delivery, ..."), so the sentence keeps its meaning on its own.
    """
    return [sentence for sentence, _ in sentences_in_paragraphs(text)]


def sentences_in_paragraphs(text: str) -> list[tuple[str, str]]:
    """`sentences_of` with each sentence's paragraph: "Let it arrive and return it" is about a shipped order
    because its paragraph opens with "Once the order is shipped"."""
    out: list[tuple[str, str]] = []
    prose: list[str] = []
    heading = ""
    rows: list[list[str]] = []
    opening = False  # the next prose line opens a section with a paragraph
    in_list = False  # lower-case list items are being joined onto the sentence that introduced them

    def flush_table() -> None:
        if len(rows) > 1:
            header, body = rows[0], rows[1:]
            for r in body:  # one sentence per row, so the scorer can pick the row that answers
                cells = ", ".join(f"{h} {c}" for h, c in zip(header[1:], r[1:], strict=False) if c)
                row = f"{heading + ' — ' if heading else ''}{r[0]}: {cells}."
                out.append((row, row))
        rows.clear()

    def flush_prose() -> None:
        # A button named with a question mark (**Forgot password?**) does not end the sentence that names it.
        joined = BOLD_QUESTION.sub(lambda m: m.group(1) + QUESTION_MARK, " ".join(prose))
        body = " ".join(joined.replace("**", "").replace("`", "").split())
        body = re.sub(r"(?<![\w*])\*([^*]+?)\*(?![\w*])", r"\1", body)  # *italics* read as plain words
        out.extend(
            (x.strip().replace(QUESTION_MARK, "?"), body.replace(QUESTION_MARK, "?"))
            for x in re.split(r"(?<=[.!?])\s+", body)
            if len(x.strip()) > 20
        )
        prose.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            flush_prose()
            cells = [c.strip().replace("**", "") for c in stripped.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        flush_table()
        if stripped.startswith("#"):
            flush_prose()
            heading = stripped.lstrip("#").strip()
            opening = stripped.startswith("##")
            continue
        if not stripped:
            if not (prose and prose[-1].rstrip().endswith(":")):
                flush_prose()  # a blank line ends a paragraph (a lead-in "for:" waits for its list)
            continue
        item = re.match(r"^(?:[-*]|\d+\.)\s+", stripped)
        if opening and not item and heading:
            stripped = f"{heading}: {stripped[0].upper()}{stripped[1:]}"
        opening = False
        body = re.sub(r"^(?:[-*]|\d+\.)\s+", "", stripped)
        if item:  # "- **The VAT rate looks wrong.** Most goods ..." keeps its question with its answer
            body = re.sub(r"^\*\*([^*]+?)[.?]\*\*\s+(?=\S)", r"\1: ", body)
            # "You can ask within 90 days for:" + "- the billing name," + "- the billing address.": lower-case
            # items finish the sentence that introduces them; any other item is a sentence of its own.
            if body[:1].islower() and prose and (in_list or prose[-1].rstrip().endswith(":")):
                prose.append(body)
                in_list = True
                continue
            flush_prose()
        in_list = bool(item) and in_list
        prose.append(body)
    flush_table()
    flush_prose()
    return [(" ".join(x.split()), p) for x, p in out]


class SentenceScorer:
    """Ranks an article's sentences by meaning (MiniLM cosine) plus word overlap; caches sentence vectors."""

    def __init__(self, embedder: Any = None, cache_size: int = 8192) -> None:
        self.embedder, self.cache_size = embedder, cache_size
        self._cache: dict[str, Any] = {}

    def _vectors(self, texts: list[str]) -> Any:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, self.embedder.embed(missing), strict=True))
        return np.stack([self._cache[t] for t in texts])

    def _scores(self, texts: list[str], ticket: str, bonus: list[float] | None = None) -> list[float]:
        """Each text's closeness to `ticket` (already `with_regions`): MiniLM cosine plus 0.02 per shared word (word
        overlap alone without an embedder), plus `bonus`."""
        words = _words(ticket)
        extra = bonus or [0.0] * len(texts)
        overlap = [len(_words(t) & words) for t in texts]
        if self.embedder is not None:
            sims = self._vectors(texts) @ self._vectors([ticket])[0]
            return [float(sim) + 0.02 * o + b for sim, o, b in zip(sims, overlap, extra, strict=True)]
        return [float(o) + b for o, b in zip(overlap, extra, strict=True)]

    def closest(self, passages: list[str], ticket: str) -> int:
        """Index of the passage closest to `ticket`, scored as `best` scores sentences (without its bonuses)."""
        scores = self._scores(passages, with_regions(ticket))
        return max(range(len(passages)), key=lambda k: (scores[k], -k))

    def best(
        self,
        text: str,
        ticket: str,
        n: int,
        keep: Callable[[str], bool] | None = None,
        prefer: Callable[[str], bool] | None = None,
    ) -> list[str]:
        """The `n` sentences of `text` closest to `ticket` (among those `keep` accepts), in article order.

        Sentences `prefer` accepts (about the order's own status) get STATUS_BONUS."""
        # `keep` and `prefer` read the sentence's paragraph: its opening says which orders it is about.
        pairs = [
            (x, p)
            for x, p in sentences_in_paragraphs(text)
            if (keep is None or keep(p)) and not contradicts(x, ticket)
        ]
        sentences = [x for x, _ in pairs]
        if not sentences:
            return []
        ticket = with_regions(ticket)  # "delivery to Spain" is answered by the article's "EU" row
        words = _words(ticket)
        kinds = [k for k, (asks, _) in ANSWER_TYPES.items() if asks.search(ticket)]
        typed = [
            sum(ANSWER_TYPE_BONUS for k in kinds if ANSWER_TYPES[k][1].search(x))
            + (STATUS_BONUS if prefer is not None and prefer(p) else 0.0)
            + (FAQ_BONUS if _asks_heading(p, words) else 0.0)
            for x, p in pairs
        ]
        scores = self._scores(sentences, ticket, typed)
        ranked = sorted(range(len(sentences)), key=lambda k: (-scores[k], k))[:n]
        return [sentences[k] for k in sorted(ranked)]
