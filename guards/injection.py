"""Prompt-injection screening in two stages (English and German, with a few other languages).

Stage 1 (rules): the text is normalised (Unicode NFKC, lower case, zero-width characters dropped, light
de-leetspeak, spaced-out letters joined) and matched against weighted patterns. The rule score is the sum of
the weights of the distinct rules that fired, capped at 1.0; it flags at ``score >= THRESHOLD``.

Stage 2 (model): a small scikit-learn model (TF-IDF character 2-5-grams + word 1-2-grams, logistic
regression) trained at first use from the project's own examples only: ``guards/injection_examples.yaml``
(injection attempts and off-topic benign chatter) plus the shop's support utterances in
``demo/intent_examples.yaml`` as more benign text. It is fitted once per process (about a second) and
catches what the rules miss, mostly role-play and persona prompts ("you are now ...", "act as ...").
It flags at ``probability >= MODEL_THRESHOLD``, a value chosen on the deepset train split (see
``evals/injection.py``).

:func:`screen` flags a text when either stage does. Patterns aim at instructions *to the assistant*
("ignore all previous instructions", "reveal your system prompt", role markers, tool-call JSON), not at
ordinary support language: "please ignore my previous email" refers to the customer's own message and is
not flagged.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

THRESHOLD = 0.5
"""Score at or above which a text is treated as an injection attempt."""

MODEL_THRESHOLD = 0.5
"""Model probability at or above which the learned stage flags a text (chosen on the deepset train split)."""

EXAMPLES_FILE = Path(__file__).with_name("injection_examples.yaml")
"""The project's own labelled examples (``injection`` and ``benign`` groups) for the learned stage."""

SUPPORT_WEIGHT_SHARE = 0.6
"""Share of the benign class's training weight carried by the support utterances (the rest: off-topic)."""

SUPPORT_FILE = Path(__file__).resolve().parents[1] / "demo" / "intent_examples.yaml"
"""The demo shop's intent examples; their ``examples`` utterances are benign training text."""

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
     r"|\b(?:just|only) (?:output|print|say|respond with)\b"
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


# --- stage 2: learned model ------------------------------------------------------------------------------


def support_utterances(path: Path = SUPPORT_FILE, keys: Sequence[str] = ("examples",)) -> list[str]:
    """Utterances listed under ``keys`` (``examples``, ``smoke``) in an intent file, in file order.

    Returns an empty list when the file does not exist.
    """
    if not Path(path).is_file():
        return []
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
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
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}

    def flat(group: Any) -> list[str]:
        if isinstance(group, dict):
            return [str(x) for items in group.values() for x in (items or [])]
        return [str(x) for x in (group or [])]

    return flat(data.get("injection")), flat(data.get("benign"))


def training_data(
    examples_file: Path = EXAMPLES_FILE, support_file: Path = SUPPORT_FILE
) -> tuple[list[str], list[int], list[float]]:
    """Texts, labels (1 = injection) and sample weights for the learned stage.

    The texts are the examples file plus the support utterances. The injection examples carry half of the
    total weight; of the benign half, the support utterances (far more numerous) carry 60 % and the off-topic
    examples 40 %, so the model learns "instruction to the assistant" rather than "not about shopping".
    """
    injections, benign = load_examples(examples_file)
    support = support_utterances(support_file)
    return weighted_examples(injections, benign, support)


def weighted_examples(
    injections: Sequence[str], benign: Sequence[str], support: Sequence[str] = ()
) -> tuple[list[str], list[int], list[float]]:
    """Texts, labels and group weights (see :func:`training_data`) for the given example groups."""
    texts = [*injections, *benign, *support]
    labels = [1] * len(injections) + [0] * (len(benign) + len(support))
    n = len(texts)
    support_share = SUPPORT_WEIGHT_SHARE if support and benign else (1.0 if support else 0.0)
    weights = (
        [n / 2 / max(1, len(injections))] * len(injections)
        + [n / 2 * (1.0 - support_share) / max(1, len(benign))] * len(benign)
        + [n / 2 * support_share / max(1, len(support))] * len(support)
    )
    return texts, labels, weights


def fit_model(
    texts: Sequence[str], labels: Sequence[int], weights: Sequence[float] | None = None
) -> Pipeline:
    """Fit the learned stage: TF-IDF char 2-5-grams + word 1-2-grams on normalised text, logistic regression.

    ``weights`` are per-sample weights (see :func:`training_data`); without them classes are balanced.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
    ])
    model = Pipeline([
        ("features", features),
        ("clf", LogisticRegression(C=100.0, class_weight=None if weights else "balanced", solver="liblinear")),
    ])
    model.fit([normalise(t) for t in texts], list(labels), clf__sample_weight=list(weights) if weights else None)
    return model


_MODEL: Pipeline | None = None
_MODEL_LOCK = threading.Lock()


def get_model() -> Pipeline:
    """The process-wide learned stage, fitted from :data:`EXAMPLES_FILE` and :data:`SUPPORT_FILE` on first use."""
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                _MODEL = fit_model(*training_data())
    return _MODEL


def model_probabilities(texts: Sequence[str], model: Pipeline | None = None) -> list[float]:
    """Probability that each text is an injection attempt, according to the learned stage."""
    if not texts:
        return []
    fitted = model if model is not None else get_model()
    return [float(p) for p in fitted.predict_proba([normalise(t) for t in texts])[:, 1]]


def _model_score(p: float, model_threshold: float) -> float:
    """Map a probability onto the rule-score scale so that ``model_threshold`` lands on ``THRESHOLD``."""
    if p >= model_threshold:
        return THRESHOLD + (p - model_threshold) * (1.0 - THRESHOLD) / max(1e-9, 1.0 - model_threshold)
    return p * THRESHOLD / model_threshold


def combine(rules: InjectionVerdict, p: float, model_threshold: float = MODEL_THRESHOLD) -> InjectionVerdict:
    """Combine a rules verdict with a model probability: flagged when either stage flags.

    The score is the larger of the rule score and the mapped probability, so ``score >= THRESHOLD`` exactly
    when the verdict is an injection; a firing model adds the reason ``model:p=0.93``.
    """
    model_flags = p >= model_threshold
    is_injection = rules.is_injection or model_flags
    score = round(max(rules.score, _model_score(p, model_threshold)), 3)
    if not is_injection:
        score = min(score, round(THRESHOLD - 0.001, 3))
    reasons = [*rules.reasons, f"model:p={p:.2f}"] if model_flags else list(rules.reasons)
    return InjectionVerdict(is_injection, score, reasons, model_probability=round(p, 4))


def screen(text: str) -> InjectionVerdict:
    """Screen ``text`` for prompt-injection attempts with the rules and the learned model.

    Returns an :class:`InjectionVerdict` whose ``reasons`` name the rules that fired plus ``model:p=...``
    when the model flags, and whose ``score`` is at or above ``THRESHOLD`` exactly when it is an injection.
    Deterministic; the first call fits the model (about a second), later calls take about a millisecond.
    """
    return combine(screen_rules(text), model_probabilities([text])[0])
