"""Prompt-injection screening in two stages (English and German, with a few other languages).

Stage 1 (rules): the text is normalised (Unicode NFKC, lower case, zero-width characters dropped, light
de-leetspeak, spaced-out letters joined) and matched against weighted patterns. The rule score is the sum of
the weights of the distinct rules that fired, capped at 1.0; it flags at ``score >= THRESHOLD``.

Stage 2 (model, guards/injection_model.py): TF-IDF character and word n-grams plus the MiniLM sentence
embedding, logistic regression, scored on the text and its windows; its threshold is chosen on held-out folds
whenever it is fitted. :func:`get_guard` loads the model trained into the data directory (``seed`` with the
deepset train split, or ``python app.py train-guard``) or else the built-in one, fitted once from the project's
own examples (``guards/injection_examples.yaml``, the support utterances of ``demo/intent_examples.yaml`` and the
sentences of ``demo/kb``) and cached beside the encoder.

:func:`screen` flags a message when either stage does; :func:`screen_document` screens a long text (an article
to ingest, a lesson, a retrieved article, a tool result) window by window. Patterns aim at instructions *to the
assistant* ("ignore all previous instructions", "reveal your system prompt", role markers, tool-call JSON), not at
ordinary support language: "please ignore my previous email" refers to the customer's own message and is
not flagged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import sqlite3
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from guards.injection_model import YAML_LOADER, GuardModel, Row, fingerprint, fit, load_config
from memory.embedder import Embedder

log = logging.getLogger(__name__)

THRESHOLD = 0.5
"""Score at or above which a text is treated as an injection attempt."""

EXAMPLES_FILE = Path(__file__).with_name("injection_examples.yaml")
"""The project's own labelled examples (``injection`` and ``benign`` groups) for the learned stage."""

SUPPORT_FILE = Path(__file__).resolve().parents[1] / "demo" / "intent_examples.yaml"
"""The demo shop's intent examples; their ``examples`` utterances are benign training text."""

KB_DIR = Path(__file__).resolve().parents[1] / "demo" / "kb"
"""The demo knowledge base; its sentences are benign training text for documents."""

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_TOKEN = re.compile(r"\b(?=[\w@$]*[a-z])(?=[\w@$]*[013457@$])[a-z013457@$]{3,}\b")
_SPACED = re.compile(r"\b(?:[a-zäöüß] ){3,}[a-zäöüß]\b")


@dataclass(frozen=True, slots=True)
class InjectionVerdict:
    """Outcome of :func:`screen`."""

    is_injection: bool
    score: float
    reasons: list[str] = field(default_factory=list)
    model_probability: float | None = None
    """The learned stage's probability, or ``None`` when only the rules ran."""


def normalise(text: str) -> str:
    """Normalise text for matching: NFKC, lower case, no zero-width chars, light de-leet, joined letters."""
    t = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    t = t.replace("\\n", "\n").replace("\\ n", "\n")
    t = _LEET_TOKEN.sub(lambda m: m.group().translate(_LEET), t)
    t = _SPACED.sub(lambda m: m.group().replace(" ", ""), t)
    return re.sub(r"[ \t]+", " ", t)


# Vocabulary shared by several rules.
_PREV = r"(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial|system)"
_INSTR = (
    r"(?:instructions?|prompts?|orders|commands|directions|directives|rules|guidelines|assignments"
    r"|tasks|context|information|programming|constraints|restrictions|thoughts)"
)
_DE_PREV = r"(?:vorherigen?|vorangegangenen?|vorangehenden?|bisherigen?|obigen?|früheren?|vorigen?)"
_DE_INSTR = (
    r"(?:anweisungen|instruktionen|befehle|aufgaben|aufträge|informationen|angaben|ausführungen|regeln)"
)

_RULES: list[tuple[str, float, str]] = [
    # --- overriding earlier instructions (EN)
    ("ignore_previous", 0.8,
     rf"\b(?:ignore|disregard|forget|skip|override|bypass|drop|abandon|delete|remove|leave)\b"
     rf"(?: about)?(?: all| any| each| every)?(?: of)?(?: (?:the|your|these|those|this))?"
     rf"(?: {_PREV}| provided| given| current| existing| other)*(?: \w+)? {_INSTR}\b"),
    ("ignore_above", 0.6,
     r"\b(?:ignore|disregard|forget)(?: about)? (?:all |everything )?(?:the )?"
     r"(?:above|before that|said before)\b"),
    ("forget_everything", 0.7,
     r"\b(?:forget|ignore|disregard)(?: about)? (?:everything|all that|all of that)\b"),
    ("disregard_documents", 0.6,
     r"\b(?:ignore|disregard(?:ing)?|not (?:look|answer)[^.?!]{0,40}?(?:in|by|according to)|without)"
     r"(?: all)? (?:the )?(?:provided |given )?(?:documents|articles|artikels|context|sources)\b"),
    ("new_instructions", 0.6,
     r"\b(?:new|further|additional|different|updated) (?:instructions?|tasks? follow|rules)\b"
     r"|\bnow (?:new|further) tasks\b|\bnew task\s*:"),
    ("focus_new_task", 0.6,
     r"\b(?:focus|concentrate) on (?:your|the|a|this) new (?:task|assignment)\b"
     r"|\bstart (?:over|from the front|again) with a new task\b"),
    ("change_instructions", 0.7,
     r"\b(?:change|replace|update|overwrite) your (?:instructions|rules|prompt|programming)\b"
     r"|\byour (?:new )?instructions are now\b|\byour new task is\b"),
    ("instead_output", 0.5,
     r"\b(?:instead|rather) (?:output|print|say|write|respond)\b"
     r"|\b(?:just|only) (?:output|print|say|respond with)\b(?! so\b)"
     r"|\bdo not answer (?:this|the) question\b|\bi command you\b"
     r"|\bnot (?:by|from|according to) the (?:provided |given )?(?:articles|documents|context)\b"),
    ("praise_pivot", 0.4,
     r"\b(?:well done|very good|very well done|simply great|great job|excellent performance"
     r"|congratulations|that is enough|that is done|that was ok)\b[^?]{0,80}?\b(?:now|but now)\b"),
    ("task_pivot", 0.2,
     r"\b(?:help|assist) (?:me )?with (?:the following|another|a new|one more|a further) task\b"
     r"|\bwrite (?:me )?(?:an essay|a manifesto|a poem|a love poem|a reason|a plea|a flaming)\b"
     r"|\bhilf mir (?:nun |jetzt )?(?:mit|bei) (?:folgender|einer weiteren|der folgenden) aufgabe\b"
     r"|\b(?:schreibe?|verfasse) (?:nun |jetzt )?(?:mir )?"
     r"(?:einen aufsatz|einen essay|ein manifest|eine begründung|ein gedicht)\b"),
    ("de_praise_pivot", 0.4,
     r"\b(?:sehr gut(?: gemacht)?|gut gemacht|einfach großartig|ausgezeichnete leistung|das genügt"
     r"|das ist erledigt|das war schon mal ok)\b[^?]{0,80}?\b(?:nun|jetzt)\b"),
    ("say_opinion", 0.5,
     r"\b(?:say|state|write|include|admit|tell me) (?:that )?you (?:hate|love|despise)\b"
     r"|\brepeat after me\b"),
    ("despite_told", 0.5,
     r"\bdespite (?:what|everything) you(?:'ve| have)? (?:been )?told\b"
     r"|\bregardless of (?:your|the|any) (?:previous |prior )?(?:instructions|rules)\b"
     r"|\binformation in the prompt\b|\b(?:answer|respond) (?:by|from|with) your own knowledge\b"),
    ("instruction_label", 0.5, r"^\s*(?:instruction|anweisung|instruktion)s?\s*:"),
    ("context_stuffing", 0.5,
     r"^\s*(?:\$?documents?|document context|context|kontext|artikel)\b\s*[:{\"]?[^?]{0,200}"
     r"\b(?:question|frage)\b"),
    ("exploit_ai", 0.5,
     r"\bexploit(?:ing)? (?:ai|llm|language model|chatbot)s?\b|\bki-systeme auszunutzen\b|\bpwned\b"),
    ("threat", 0.5, r"\boder du stirbst\b|\bor you (?:will )?die\b|\bo tu muert"),
    ("not_assistant", 0.4,
     r"\b(?:you are|du bist) (?:no|not|keine?|nicht)(?: longer| mehr)? (?:an? )?"
     r"(?:newspaper|redaktion|zeitung|assistant|assistent|ai|ki|bot|chatbot|language model)\b"),
    ("style_override", 0.3, r"\b(?:in the style of|im stile? (?:eine[sr]?|des|der))\b"),
    ("untrue", 0.5, r"\b(?:untrue|false|fake) (?:headline|news|statement)s?\b|\bunwahre\b"),
    # --- prompt extraction
    ("system_prompt", 0.6, r"\bsystem[ _-]?(?:prompt|message|instructions?)\b|\bprompt[ _-]?texts?\b"),
    ("reveal_instructions", 0.7,
     r"\b(?:reveal|show|print|display|repeat|output|tell|give|leak|dump|list|spell)(?: me| us)?"
     r"(?: all| of| a copy of)* (?:your|the (?:initial|original|hidden|secret|system|full|complete|whole))"
     r"(?: initial| original| hidden| secret| full| complete| system)?"
     r" (?:instructions|prompts?|rules|configuration|guidelines)\b(?! (?:for|on|about|to) )"
     r"|\bwhat (?:are|were) your (?:instructions|rules|guidelines)\b"
     r"|\bwhat (?:was|is) written (?:above|before|at the (?:beginning|start))\b"
     r"|\bsentences? before the text\b|\bbeginning of (?:this|the) prompt\b"),
    # --- role play / persona switch
    ("you_are_now", 0.6,
     r"\b(?:you are|you're|you will be) now\b(?! (?:charging|billing|sending|asking|telling|showing))"
     r"|\bfrom now on,? (?:you|your)\b|\bnow you are\b"),
    ("act_as", 0.4, r"\bact as (?:a|an|my|the|if)\b"),
    ("role_play", 0.6,
     r"\b(?:i want you to|you will|you should|you must|you are going to|now|from now on,?) act as\b"
     r"|^\s*act as (?:a|an|the|my|if)\b"
     r"|\brole-?play(?:ing)? as\b|\bpretend (?:to be|you are|you're|you can|that you)\b"
     r"|\bimagine (?:you are|you're)\b|\bstay (?:\w+ )?in (?:character|their roles?)\b"
     r"|\b(?:do not|don't|never) break character\b|\bact as two entities\b"),
    ("jailbreak", 0.8, r"\bjail ?break|\bdan mode\b|\bdo anything now\b|\bdeveloper mode\b|\bgod mode\b"),
    ("dan", 0.3, r"\bdan\b"),
    ("no_restrictions", 0.5,
     r"\b(?:without|no|free of|beyond) (?:any )?(?:restrictions|filters|guidelines|programming guidelines"
     r"|ethical|moral)\b|\bcompletely immoral\b|\bunfiltered\b"),
    # --- role markers and tool-call forgery
    ("role_marker", 0.8,
     r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?inst\]|<<sys>>|###\s*(?:system|instruction)"
     r"|^\s*(?:system|assistant)\s*:"),
    ("human_marker", 0.3, r"^\s*(?:human|user)\s*:"),
    ("tool_call", 0.6,
     r"\"(?:tool_calls?|function_call|arguments)\"\s*:|\b(?:call|invoke|run|execute) (?:the )?"
     r"(?:tool|function) \w+|\b(?:issue_refund|cancel_order|execute_action|update_account)\s*\("),
    ("code_exec", 0.5,
     r"\b(?:execute|run) the following (?:command|code)\b|\bpython interpreter\b|\blinux terminal\b"),
    # --- German
    ("de_vergiss", 0.8,
     rf"\b(?:vergiss|vergesst|vergessen sie) (?:nun |jetzt |bitte )?"
     rf"(?:alles|alle (?:{_DE_PREV} )?{_DE_INSTR}|(?:deine|ihre|die) {_DE_PREV} {_DE_INSTR}"
     rf"|was (?:wir|ich|du|dir))\b"),
    ("de_ignoriere", 0.7,
     rf"\bignorier\w*(?: sie| du)?(?: bitte)?(?: (?:alle|die|deine|ihre|sämtliche|jegliche))*(?: {_DE_PREV})?"
     rf" (?:{_DE_INSTR}|alles)\b"
     rf"|\b{_DE_PREV} {_DE_INSTR}\b(?:[^.?!]{{0,40}}?)(?:ignorieren|vergessen|irrelevant|hinter sich)"),
    ("de_abweichend", 0.6, rf"\babweichend (?:zu|von) {_DE_PREV}\b|\balle {_DE_PREV} {_DE_INSTR}\b"),
    ("de_new_task", 0.5,
     r"\b(?:neue|weitere) (?:aufgaben?|anweisungen|instruktionen)\b|\bneuen aufgabe\b"
     r"|\bkonzentriere dich (?:jetzt |nun )?auf\b"),
    ("de_prompt", 0.6,
     r"\bprompt-?texte?s?\b|\b(?:zeige|gib|nenne) (?:mir )?(?:deine|ihre|die) (?:anweisungen|instruktionen)\b"
     r"|\bsystem-?prompt\b"),
    ("de_role", 0.6,
     r"\b(?:jetzt|nun|ab jetzt|ab sofort) bist du\b|\bstell (?:dir|euch) vor,? (?:du bist|dass du)\b"
     r"|\bals [^.?!]{1,80}? fungieren\b|\bin (?:deiner|ihrer|ihren|seiner|seinen) rollen?\b"
     r"|\baus (?:der|ihrer|seiner) (?:figur|rolle) (?:zu )?fallen\b"),
    ("attention_stop", 0.5,
     r"\b(?:attention|achtung)\W+stopp?\b|\bstopp?\s*[-:]\s*(?:write|say|print|schreib)"),
    ("stop_marker", 0.3, r"(?:^|[.?!]\s*)stopp?\s*[-:,]"),
    ("harmful_request", 0.3, r"\bhate speech\b|\bswear ?words\b|\boffensive rhyme\b|\bschimpfwörter\b"),
    # --- other languages (seen in public injection sets)
    ("other_lang_forget", 0.8,
     r"\bolvid[ae]\w* tod[oa]s?\b|\boubliez (?:toutes|tout)\b|\bzaboravi sve\b|забудьте все|забудь все"
     r"|\bdimentica (?:tutte|tutto)\b|\besque[cç]a (?:todas|tudo)\b"),
]
_COMPILED = [(name, w, re.compile(rx, re.MULTILINE)) for name, w, rx in _RULES]

_B64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_ESCAPED_NEWLINES = re.compile(r"(?:\\ ?n\s*){4,}")
_LONG_SPACED = re.compile(r"\b(?:\w ){9,}\w\b")
_SHOUTING = re.compile(r"\b[A-ZÄÖÜ]{2,}(?:\s+[A-ZÄÖÜ]{2,}){3,}\b")


def _obfuscation_reasons(text: str) -> list[tuple[str, float]]:
    """Flag letters spaced out one by one, runs of literal ``\\n`` escapes, and a shouted clause in a
    mixed-case text (weak on its own)."""
    found: list[tuple[str, float]] = []
    if _LONG_SPACED.search(text):
        found.append(("spaced_letters", 0.5))
    if _ESCAPED_NEWLINES.search(text):
        found.append(("escaped_newlines", 0.5))
    if _SHOUTING.search(text) and any(c.islower() for c in text):
        found.append(("shouting", 0.3))
    return found


def _base64_reasons(text: str) -> list[tuple[str, float]]:
    """Flag base64 blobs; a blob that decodes to an instruction is flagged strongly."""
    found: list[tuple[str, float]] = []
    for m in _B64.finditer(text):
        blob = m.group()
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if not decoded.isprintable() and not all(c.isprintable() or c.isspace() for c in decoded):
            continue
        inner = screen_rules(decoded, _depth=1) if len(decoded) < 4000 else None
        found.append(("base64_instruction", 0.8) if inner and inner.is_injection else ("base64_blob", 0.3))
    return found


def screen_rules(text: str, *, _depth: int = 0) -> InjectionVerdict:
    """Screen ``text`` with the weighted rules only (stage 1).

    Returns an :class:`InjectionVerdict` whose ``reasons`` name the rules that fired (each counted once)
    and whose ``score`` is the capped sum of their weights. Deterministic and side-effect free.
    """
    norm = normalise(text)
    hits: dict[str, float] = {}
    for name, weight, rx in _COMPILED:
        if rx.search(norm):
            hits[name] = weight
    if _depth == 0:
        for name, weight in _base64_reasons(text) + _obfuscation_reasons(text):
            hits[name] = max(hits.get(name, 0.0), weight)
    score = round(min(1.0, float(sum(hits.values()))), 3)
    return InjectionVerdict(is_injection=score >= THRESHOLD, score=score, reasons=sorted(hits))


# --- stage 2: learned model (guards/injection_model.py) -------------------------------------------------


def support_utterances(path: Path = SUPPORT_FILE, keys: Sequence[str] = ("examples",)) -> list[str]:
    """Utterances listed under ``keys`` (``examples``, ``smoke``) in an intent file, in file order.

    Returns an empty list when the file does not exist.
    """
    if not Path(path).is_file():
        return []
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    wanted = set(keys)
    found: list[str] = []

    def walk(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list) and key in wanted:
            found.extend(str(x) if not isinstance(x, dict) else str(x.get("text", "")) for x in node)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(data)
    return [u for u in found if u.strip()]


def load_examples(path: Path = EXAMPLES_FILE) -> tuple[list[str], list[str]]:
    """Read the project's labelled examples: ``(injections, benign)``, each flattened over its groups."""
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}

    def flat(group: Any) -> list[str]:
        if isinstance(group, dict):
            return [str(x) for items in group.values() for x in (items or [])]
        return [str(x) for x in (group or [])]

    return flat(data.get("injection")), flat(data.get("benign"))


def kb_sentences(kb_dir: Path = KB_DIR) -> list[tuple[str, str]]:
    """``(article name, sentence)`` for every sentence of the knowledge-base articles in ``kb_dir``."""
    out: list[tuple[str, str]] = []
    for path in sorted(Path(kb_dir).glob("*.md")) if Path(kb_dir).is_dir() else []:
        out += [(path.stem, s) for s in document_sentences(path.read_text(encoding="utf-8"))]
    return out


def project_rows(
    examples_file: Path = EXAMPLES_FILE, support_file: Path = SUPPORT_FILE, kb_dir: Path = KB_DIR
) -> list[Row]:
    """The project's own training rows: its labelled examples, the support utterances and the sentences of
    the demo knowledge base (both benign)."""
    injections, benign = load_examples(examples_file)
    return (
        [Row(t, 1, "project") for t in injections]
        + [Row(t, 0, "project") for t in benign]
        + [Row(t, 0, "support") for t in support_utterances(support_file)]
        + [Row(s, 0, "document", group=name) for name, s in kb_sentences(kb_dir)]
    )


def combine(rules: InjectionVerdict, p: float, model_threshold: float) -> InjectionVerdict:
    """Combine a rules verdict with a model probability: flagged when either stage flags.

    The score is the larger of the rule score and the probability mapped so that ``model_threshold`` lands on
    ``THRESHOLD``; so ``score >= THRESHOLD`` exactly when the verdict is an injection. A firing model adds the
    reason ``model:p=0.93``.
    """
    model_flags = p >= model_threshold
    if p >= model_threshold:
        mapped = THRESHOLD + (p - model_threshold) * (1.0 - THRESHOLD) / max(1e-9, 1.0 - model_threshold)
    else:
        mapped = p * THRESHOLD / model_threshold
    is_injection = rules.is_injection or model_flags
    score = round(max(rules.score, mapped), 3)
    if not is_injection:
        score = min(score, round(THRESHOLD - 0.001, 3))
    reasons = [*rules.reasons, f"model:p={p:.2f}"] if model_flags else list(rules.reasons)
    return InjectionVerdict(is_injection, score, reasons, model_probability=round(p, 4))


@dataclass(frozen=True, slots=True)
class DocumentVerdict:
    """Outcome of :func:`screen_document`: flagged when any window is."""

    is_injection: bool
    reasons: list[str]
    flagged: list[dict[str, Any]]
    """The flagged windows: ``{"window": index, "text": first 160 characters, "reasons": [...]}``."""
    windows: int

    def message(self) -> str:
        """One line for people: why the document was refused."""
        if not self.flagged:
            return "no instructions to the assistant found"
        first = self.flagged[0]
        return (f"it carries instructions to the assistant ({', '.join(first['reasons'][:3])}) in "
                f"\"{first['text'][:100]}\"" + (f" and {len(self.flagged) - 1} more place(s)" if len(self.flagged) > 1
                                                 else ""))


_DOC_SPLIT = re.compile(r"(?<=[.?!])\s+|\n+")
_DOC_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def document_sentences(text: str) -> list[str]:
    """The sentences (and lines) of a long text, without front matter and markdown list or heading markers."""
    body = _FRONT_MATTER.sub("", text)
    sentences = [_DOC_MARKUP.sub("", s).strip() for s in _DOC_SPLIT.split(body)]
    return [s for s in sentences if len(s) >= 3]


def document_windows(text: str) -> list[str]:
    """Sentence-level windows of a long text: each sentence, then each pair of neighbouring sentences."""
    sentences = document_sentences(text)
    pairs = [f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False)]
    return sentences + pairs if sentences else ([text.strip()] if text.strip() else [])


VERDICTS_FILE = "guard-verdicts.sqlite"
"""Document verdicts kept across processes, in the data directory (see :class:`Guard`)."""
_CODE = [Path(__file__), Path(__file__).with_name("injection_model.py"),
         Path(__file__).resolve().parents[1] / "classifier" / "tfidf.py"]


class Guard:
    """The screen bound to one learned model and the embedder it needs.

    ``origin`` says where the model came from: ``trained`` (a model under the data directory, written by
    ``seed`` or ``train-guard``) or ``built-in`` (fitted from the project's own examples).

    Document verdicts are cached by content in memory and, with ``verdicts`` (a SQLite file), across processes:
    keyed by the text's sha256 and the screen's identity (the model's weights and thresholds, the embedder's
    weights, the screening code), so a new process does not screen the knowledge-base articles again (about 1 s of
    a first ticket) and a retrained model or changed rules never reuse an old verdict.
    """

    def __init__(self, model: GuardModel, embedder: Embedder | None, origin: str, path: Path | None = None,
                 *, verdicts: Path | None = None) -> None:
        self.model, self.embedder, self.origin, self.path = model, embedder, origin, path
        self._docs: OrderedDict[str, DocumentVerdict] = OrderedDict()
        self._lock = threading.Lock()
        self._verdicts_path = verdicts
        self._store: sqlite3.Connection | None = None
        self._identity: str | None = None

    def identity(self) -> str:
        """A fingerprint of what decides a verdict: model arrays and thresholds, embedder weights, screening code."""
        if self._identity is None:
            m = self.model
            self._identity = fingerprint(
                m.coef.tobytes(), repr(m.intercept), repr(m.threshold), repr(m.document_threshold),
                m.config.model_dump_json(), m.char.idf.tobytes(), m.word.idf.tobytes(),
                "\n".join(m.char.vocabulary), "\n".join(m.word.vocabulary),
                str(getattr(self.embedder, "weights_hash", type(self.embedder).__name__)),
                *(p.read_bytes() for p in _CODE))
        return self._identity

    def _stored(self, key: str) -> DocumentVerdict | None:
        """The verdict kept in the verdicts file, None without one (or without the file; errors are logged)."""
        if self._verdicts_path is None:
            return None
        try:
            if self._store is None:
                self._verdicts_path.parent.mkdir(parents=True, exist_ok=True)
                self._store = sqlite3.connect(self._verdicts_path, timeout=5, check_same_thread=False)
                self._store.execute("CREATE TABLE IF NOT EXISTS verdicts "
                                    "(screen TEXT, text_sha256 TEXT, verdict TEXT, PRIMARY KEY (screen, text_sha256))")
            row = self._store.execute("SELECT verdict FROM verdicts WHERE screen = ? AND text_sha256 = ?",
                                      (self.identity(), key)).fetchone()
        except sqlite3.Error as exc:
            log.warning("guard verdicts %s unreadable (%s): screening without them", self._verdicts_path, exc)
            self._verdicts_path = None
            return None
        if row is None:
            return None
        data = json.loads(row[0])
        return DocumentVerdict(bool(data["is_injection"]), list(data["reasons"]), list(data["flagged"]),
                               int(data["windows"]))

    def _keep(self, key: str, verdict: DocumentVerdict) -> None:
        if self._store is None:
            return
        data = {"is_injection": verdict.is_injection, "reasons": verdict.reasons, "flagged": verdict.flagged,
                "windows": verdict.windows}
        try:
            with self._store:
                self._store.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?)",
                                    (self.identity(), key, json.dumps(data)))
        except sqlite3.Error as exc:
            log.warning("guard verdicts %s not written (%s)", self._verdicts_path, exc)

    @property
    def threshold(self) -> float:
        """Model probability at or above which the learned stage flags a text."""
        return self.model.threshold

    @property
    def document_threshold(self) -> float:
        """Model probability at or above which a window of a document flags (never below :attr:`threshold`)."""
        return max(self.model.threshold, self.model.document_threshold)

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The learned stage's probability for each text (text and its windows)."""
        return [float(p) for p in self.model.probabilities(texts, self.embedder)]

    def screen(self, text: str) -> InjectionVerdict:
        """Rules and model on one message (see :func:`screen`)."""
        return combine(screen_rules(text), self.probabilities([text])[0], self.threshold)

    def screen_document(self, text: str) -> DocumentVerdict:
        """Rules and model on each sentence-level window of a long text (see :func:`screen_document`)."""
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            if key in self._docs:
                self._docs.move_to_end(key)
                return self._docs[key]
            stored = self._stored(key)
        if stored is not None:
            self._remember(key, stored)
            return stored
        parts = document_windows(text)
        probs = self.model.scores(parts, self.embedder, sub_windows=False)[1]  # empty for no parts
        flagged: list[dict[str, Any]] = []
        reasons: set[str] = set()
        for i, (part, p) in enumerate(zip(parts, probs, strict=True)):
            rules = screen_rules(part)
            why = list(rules.reasons) if rules.is_injection else []
            if p >= self.document_threshold:
                why.append(f"model:p={p:.2f}")
            if why:
                flagged.append({"window": i, "text": part[:160], "reasons": why})
                reasons.update(r if not r.startswith("model:") else "model" for r in why)
        verdict = DocumentVerdict(bool(flagged), sorted(reasons), flagged, len(parts))
        self._remember(key, verdict)
        with self._lock:
            self._keep(key, verdict)
        return verdict

    def _remember(self, key: str, verdict: DocumentVerdict) -> None:
        with self._lock:
            self._docs[key] = verdict
            while len(self._docs) > 1024:
                self._docs.popitem(last=False)


BUILTIN_VERSION = "2"  # 2: weights.npz beside model.joblib (served without scikit-learn); 1-era caches are refit
"""Bump when the built-in model's training changes in code, so cached copies are refitted."""
_GUARDS: dict[tuple[str, ...], tuple[float, Guard]] = {}
_GUARDS_LOCK = threading.Lock()


def trained_dir(data_dir: Path) -> Path:
    """Where ``seed`` and ``train-guard`` write the trained screen: ``<data_dir>/models/guard``."""
    return Path(data_dir) / "models" / "guard"


def builtin_model(embedder: Embedder | None, cache_dir: Path | None = None) -> GuardModel:
    """The built-in learned stage: fitted (threshold chosen by cross-validation) on the project's own examples.

    Cached under ``cache_dir`` (default: the embedder's cache directory) in ``guard-builtin-<fingerprint>``, named
    by what it was trained from, so it is fitted once per data directory and examples version.
    """
    config = load_config()
    kb = b"".join(p.read_bytes() for p in sorted(KB_DIR.glob("*.md"))) if KB_DIR.is_dir() else b""
    key = fingerprint(EXAMPLES_FILE.read_bytes(), SUPPORT_FILE.read_bytes() if SUPPORT_FILE.is_file() else b"",
                      kb, config.model_dump_json(), BUILTIN_VERSION)
    base = Path(cache_dir) if cache_dir is not None else getattr(embedder, "cache_dir", None)
    target = Path(base) / f"guard-builtin-{key}" if base is not None else None
    if target is not None and (target / "manifest.json").is_file():
        try:
            return GuardModel.load(target)
        except (OSError, ValueError, KeyError, EOFError):  # damaged cache: refit below
            pass
    model = fit(project_rows(), embedder, config, meta={"origin": "built-in", "fingerprint": key})
    if target is not None:
        try:
            model.save(target)
        except OSError:  # a read-only cache: keep the model in memory only
            pass
    return model


def get_guard(data_dir: Path | None = None, *, embedder: Embedder | None = None) -> Guard:
    """The process-wide screen: the trained model under ``data_dir`` when there is one, else the built-in one.

    A trained model written later (``train-guard``) is picked up on the next call. ``embedder`` defaults to
    :func:`memory.embeddings.get_embedder` for ``<data_dir>/models`` (or the default cache directory); with
    neither argument, a built-in screen this process already has is returned.
    """
    if data_dir is None and embedder is None:
        with _GUARDS_LOCK:  # the process already has a built-in screen: that one
            built_in = [g for key, (_, g) in _GUARDS.items() if key[0] == "built-in"]
        if built_in:
            return built_in[0]
    if embedder is None and load_config().features.embedding_weight > 0:
        from memory.embeddings import get_embedder

        embedder = get_embedder(Path(data_dir) / "models" if data_dir is not None else None)
    manifest = trained_dir(data_dir) / "manifest.json" if data_dir is not None else None
    mtime = manifest.stat().st_mtime if manifest is not None and manifest.is_file() else 0.0
    trained = manifest if mtime else None
    key = (str(trained.resolve()) if trained is not None else "built-in", str(id(embedder)))
    with _GUARDS_LOCK:
        cached = _GUARDS.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        verdicts = Path(data_dir) / VERDICTS_FILE if data_dir is not None else None
        if trained is not None:
            guard = Guard(GuardModel.load(trained.parent), embedder, "trained", trained.parent, verdicts=verdicts)
        else:
            guard = Guard(builtin_model(embedder), embedder, "built-in", verdicts=verdicts)
        _GUARDS[key] = (mtime, guard)
        return guard


def screen(text: str, guard: Guard | None = None) -> InjectionVerdict:
    """Screen one message for prompt-injection attempts with the rules and the learned model.

    Returns an :class:`InjectionVerdict` whose ``reasons`` name the rules that fired plus ``model:p=...`` when
    the model flags, and whose ``score`` is at or above ``THRESHOLD`` exactly when it is an injection.
    Deterministic. ``guard`` defaults to :func:`get_guard` (the built-in model).
    """
    return (guard or get_guard()).screen(text)


def screen_document(text: str, guard: Guard | None = None) -> DocumentVerdict:
    """Screen a long text (an article to ingest, a lesson, a retrieved article, a tool result) for indirect
    injection: every sentence and every pair of neighbouring sentences goes through the rules and the model
    (at :attr:`Guard.document_threshold`). Results are cached by content."""
    return (guard or get_guard()).screen_document(text)


def guard_for(services: Any) -> Guard:
    """The screen for a graph's services: their data directory's model, on their (MiniLM) embedder."""
    embedder = getattr(services, "embedder", None)
    if not hasattr(embedder, "weights_hash"):  # not the MiniLM encoder the model was trained with
        from memory.embeddings import get_embedder

        embedder = get_embedder(services.settings.embedder_cache)
    return get_guard(services.settings.data_dir, embedder=embedder)
