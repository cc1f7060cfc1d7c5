"""The toy world: a small probabilistic grammar, its pre-training corpus and two downstream tasks.

The world is hand-written so that it can be read in one screen (:data:`NOUNS`, :data:`ADJECTIVES`, :data:`VERBS`):

* nouns in four semantic classes, each class named by a **hypernym** ("dog" is an "animal");
* adjectives in **synonym** groups ("big" / "large") with **antonyms** ("big" / "small"), and colours with neither;
* verbs with **selectional restrictions** ("eats" takes an animal or a person and a food) and number agreement.

A sentence is ``det [adj] noun verb det [adj] noun`` ("the big dog eats a red apple"); the determiner and the
verb agree with their noun ("a dog eats", "some dogs eat"). The pre-training corpus pairs two such lines,
``<s> line <sep> line``, where a line is a sentence or, with probability ``fact_rate``, a **fact** that states the
lexicon ("a dog is a animal", "big means large", "big is the opposite of small"): the only place where the
corpus says what a word means, as dictionary sentences do in real text.

Downstream, **SEM** (an NLI analogue) pairs a premise with a hypothesis made by editing one noun: a noun
replaced by a class word ("the fox sees ..." -> "the animal sees ...") is entailment if the noun belongs to that
class and contradiction if not; a class word replaced by a noun is neutral if the noun belongs to the class and
contradiction if not. The label thus hinges on one fact, the class of a noun, in a slot whose verb admits two
classes or more. SEM's training split uses only half of each class's nouns; its test split edits only the other
half (:data:`HELD_OUT`), so the class of a test noun is never shown by a label: it can only come from the
pre-training corpus (its facts and the verbs' selectional restrictions). **SYN** (a CoLA analogue) asks whether a
sentence is grammatical; the bad ones break subject-verb or determiner-noun agreement, or swap two adjacent
words. :func:`sem_rule` and :func:`syn_rule` decide both labels from the words alone, independently of the
generator, so the tests can check every generated label. Everything is a pure function of the seed.

Hand-written rather than taken from a package: no offline corpus has both the controlled lexical relations SEM
needs and a size that trains in minutes on two CPU cores.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from reprobook.mcbert.train import MCBERTConfig

PAD, BOS, SEP, MASK, NEITHER, UNK = "<pad>", "<s>", "<sep>", "<mask>", "<neither>", "<unk>"
SPECIALS = (PAD, BOS, SEP, MASK, NEITHER, UNK)

NOUNS: dict[str, tuple[str, ...]] = {
    "animal": ("dog", "cat", "horse", "cow", "wolf", "fox", "bird", "rabbit"),
    "food": ("apple", "bread", "cake", "carrot", "egg", "banana", "pear", "cookie"),
    "tool": ("hammer", "knife", "spoon", "saw", "brush", "rope"),
    "person": ("farmer", "cook", "child", "king", "doctor", "teacher"),
}
"""Semantic classes: hypernym -> its nouns (plurals add an "s")."""

ADJECTIVES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "size": (("big", "large"), ("small", "little")),
    "speed": (("fast", "quick"), ("slow",)),
    "mood": (("happy", "glad"), ("sad",)),
    "age": (("old",), ("young",)),
}
"""Scales: (synonyms at one end, synonyms at the other end); the two ends are antonyms."""

COLOURS = ("red", "brown", "white", "black")
"""Adjectives with no synonym and no antonym."""

VERBS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "eats": (("animal", "person"), ("food",)),
    "sees": (("animal", "person"), ("animal", "food", "tool", "person")),
    "uses": (("person",), ("tool",)),
    "chases": (("animal", "person"), ("animal",)),
    "cooks": (("person",), ("food",)),
    "carries": (("animal", "person"), ("food", "tool")),
}
"""Verbs (third person singular) -> (classes of the subject, classes of the object)."""

FACT_WORDS = ("is", "are", "means", "the", "opposite", "of")
SEM_LABELS = ("entailment", "neutral", "contradiction")
SYN_LABELS = ("unacceptable", "acceptable")


def plural_verb(verb: str) -> str:
    """``eats -> eat``, ``carries -> carry``."""
    return verb[:-3] + "y" if verb.endswith("ies") else verb[:-1]


HYPERNYM = {noun: cls for cls, nouns in NOUNS.items() for noun in (*nouns, cls)}
"""Every noun (and every hypernym, which names itself) -> its class."""
ADJ_POLE = {a: (scale, end) for scale, ends in ADJECTIVES.items() for end, group in enumerate(ends) for a in group}
"""Graded adjective -> (scale, end)."""


def vocabulary() -> list[str]:
    """Every token of the world, specials first (ids 0..5), then sorted words."""
    words = set(FACT_WORDS) | {"a", "some"}
    for cls, nouns in NOUNS.items():
        for noun in (*nouns, cls):
            words |= {noun, noun + "s"}
    words |= set(ADJ_POLE) | set(COLOURS)
    for verb in VERBS:
        words |= {verb, plural_verb(verb)}
    return [*SPECIALS, *sorted(words)]


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: determiner, adjective (or None), noun (singular form), plural."""

    det: str
    adj: str | None
    noun: str
    plural: bool

    def words(self) -> list[str]:
        noun = self.noun + "s" if self.plural else self.noun
        return [self.det, *([self.adj] if self.adj else []), noun]


def _phrase(rng: random.Random, classes: Sequence[str], adj_rate: float, hypernym_rate: float = 0.0) -> Phrase:
    cls = rng.choice(list(classes))
    noun = cls if rng.random() < hypernym_rate else rng.choice(NOUNS[cls])
    plural = rng.random() < 0.4
    det = rng.choice(("the", "some")) if plural else rng.choice(("the", "a"))
    adjs = (*ADJ_POLE, *COLOURS)
    return Phrase(det, rng.choice(adjs) if rng.random() < adj_rate else None, noun, plural)


def _sentence_parts(rng: random.Random, adj_rate: float = 0.6) -> tuple[Phrase, str, Phrase]:
    verb = rng.choice(list(VERBS))
    subjects, objects = VERBS[verb]
    return _phrase(rng, subjects, adj_rate, 0.1), verb, _phrase(rng, objects, adj_rate, 0.1)


def _render(subject: Phrase, verb: str, obj: Phrase) -> list[str]:
    return [*subject.words(), plural_verb(verb) if subject.plural else verb, *obj.words()]


def sentence(rng: random.Random) -> list[str]:
    """One grammatical sentence of the world."""
    return _render(*_sentence_parts(rng))


def fact(rng: random.Random) -> list[str]:
    """One sentence stating the lexicon: a hypernym, a synonym or an antonym."""
    kind = rng.random()
    if kind < 0.5:
        cls = rng.choice(list(NOUNS))
        noun = rng.choice(NOUNS[cls])
        return ["a", noun, "is", "a", cls] if rng.random() < 0.5 else [noun + "s", "are", cls + "s"]
    scale = rng.choice([s for s, ends in ADJECTIVES.items() if any(len(e) > 1 for e in ends)])
    if kind < 0.75:
        group = rng.choice([e for e in ADJECTIVES[scale] if len(e) > 1])
        a, b = rng.sample(group, 2)
        return [a, "means", b]
    low, high = ADJECTIVES[scale]
    a, b = rng.choice(low), rng.choice(high)
    a, b = (a, b) if rng.random() < 0.5 else (b, a)
    return [a, "is", "the", "opposite", "of", b]


# --- SEM: one noun edited, decided by the noun's class ---------------------------------------------------------

HELD_OUT: frozenset[str] = frozenset(n for nouns in NOUNS.values() for n in nouns[len(nouns) // 2 :])
"""The second half of every class's nouns: SEM's test edits these nouns, its training split never shows them."""

EDIT_SLOTS: tuple[tuple[str, int], ...] = tuple(
    (verb, slot) for verb, classes in VERBS.items() for slot in (0, 1) if len(classes[slot]) >= 2
)
"""(verb, 0 = subject / 1 = object) slots that admit at least two classes: there the context does not tell
which class the edited noun has."""


def _nouns(cls: str, held_out: bool) -> list[str]:
    return [n for n in NOUNS[cls] if (n in HELD_OUT) == held_out]


def sem_pair(
    rng: random.Random, label: str, held_out: bool = False, specific: bool = False
) -> tuple[list[str], list[str]]:
    """A premise and a hypothesis whose relation is ``label`` (one of :data:`SEM_LABELS`): one noun edited.

    Either a noun becomes a class word (``specific=True``: "the fox sees" -> "the animal sees": entailment if
    the noun is an animal, contradiction if not), or a class word becomes a noun ("the animal sees" -> "the fox
    sees": neutral if the noun is an animal, contradiction if not). The edited slot always admits two classes
    or more (:data:`EDIT_SLOTS`), so the label hinges on the noun's class alone. The edited noun is one of
    :data:`HELD_OUT` if ``held_out``; every other noun is never held out."""
    if label == "entailment":
        specific = True
    elif label == "neutral":
        specific = False
    verb, slot = rng.choice(EDIT_SLOTS)
    cls = rng.choice(VERBS[verb][slot])
    other = rng.choice([c for c in VERBS[verb][slot] if c != cls])
    if specific:  # noun -> class word
        before, after = rng.choice(_nouns(cls, held_out)), cls if label == "entailment" else other
    else:  # class word -> noun
        before, after = cls, rng.choice(_nouns(cls if label == "neutral" else other, held_out))
    fixed_cls = rng.choice(VERBS[verb][1 - slot])
    fixed = Phrase("the", None, rng.choice(_nouns(fixed_cls, False)), False)
    phrases = [Phrase("the", None, before, False), Phrase("the", None, after, False)]
    pairs = [(p, verb, fixed) if slot == 0 else (fixed, verb, p) for p in phrases]
    return _render(*pairs[0]), _render(*pairs[1])


def _parse(words: Sequence[str]) -> tuple[tuple[str | None, str], str, tuple[str | None, str]] | None:
    """``det [adj] noun verb det [adj] noun`` -> ((adj, noun), verb, (adj, noun)) with singular nouns and verb."""
    out: list[tuple[str | None, str]] = []
    i, verb = 0, ""
    for part in range(2):
        if i >= len(words):
            return None
        i += 1  # determiner
        adj = words[i] if i < len(words) and (words[i] in ADJ_POLE or words[i] in COLOURS) else None
        i += adj is not None
        if i >= len(words):
            return None
        noun = words[i][:-1] if words[i].endswith("s") and words[i][:-1] in HYPERNYM else words[i]
        out.append((adj, noun))
        i += 1
        if part == 0:
            if i >= len(words):
                return None
            verb = words[i]
            i += 1
    return out[0], verb, out[1]


def _relation(premise: tuple[str | None, str], hypothesis: tuple[str | None, str]) -> str:
    (pa, pn), (ha, hn) = premise, hypothesis
    if pn == hn or HYPERNYM.get(pn) == hn:
        noun = "entailment"
    elif HYPERNYM.get(hn) == pn:
        noun = "neutral"
    else:
        return "contradiction"  # a thing of another class: "the fox" is not "the tool"
    if ha is None or ha == pa:
        adj = "entailment"
    elif pa is None:
        adj = "neutral"
    elif pa in ADJ_POLE and ha in ADJ_POLE and ADJ_POLE[pa][0] == ADJ_POLE[ha][0]:
        adj = "entailment" if ADJ_POLE[pa][1] == ADJ_POLE[ha][1] else "contradiction"
    else:
        adj = "neutral"
    for label in ("contradiction", "neutral"):
        if label in (noun, adj):
            return label
    return "entailment"


def sem_rule(premise: Sequence[str], hypothesis: Sequence[str]) -> str:
    """The SEM label decided from the words alone: compare the two noun phrases slot by slot."""
    p, h = _parse(premise), _parse(hypothesis)
    if p is None or h is None:
        raise ValueError(f"not a sentence of the toy world: {' '.join(premise)!r} / {' '.join(hypothesis)!r}")
    relations = [_relation(p[0], h[0]), _relation(p[2], h[2])]
    if p[1] != h[1]:
        relations.append("contradiction")
    for label in ("contradiction", "neutral"):
        if label in relations:
            return label
    return "entailment"


# --- SYN: grammatical or not -------------------------------------------------------------------------------------


def syn_example(rng: random.Random, acceptable: bool) -> list[str]:
    """A grammatical sentence, or one broken by an agreement error or a swap of two adjacent words."""
    subject, verb, obj = _sentence_parts(rng)
    words = _render(subject, verb, obj)
    if acceptable:
        return words
    kind = rng.randrange(3)
    verb_at = len(subject.words())
    if kind == 0:  # subject-verb agreement
        words[verb_at] = verb if subject.plural else plural_verb(verb)
    elif kind == 1:  # determiner-noun agreement
        phrase, start = (subject, 0) if rng.random() < 0.5 else (obj, verb_at + 1)
        words[start] = "a" if phrase.plural else "some"
    else:  # two adjacent words swapped (never two equal words)
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return words


def syn_rule(words: Sequence[str]) -> bool:
    """Whether ``words`` is a sentence of the grammar: shape, agreement and selectional restrictions."""
    i, phrases, verb = 0, [], ""
    for part in range(2):
        if i >= len(words) or words[i] not in ("the", "a", "some"):
            return False
        det = words[i]
        i += 1
        if i < len(words) and (words[i] in ADJ_POLE or words[i] in COLOURS):
            i += 1
        if i >= len(words):
            return False
        word = words[i]
        plural = word.endswith("s") and word[:-1] in HYPERNYM
        noun = word[:-1] if plural else word
        if noun not in HYPERNYM or (det == "a" and plural) or (det == "some" and not plural):
            return False
        phrases.append((noun, plural))
        i += 1
        if part == 0:
            if i >= len(words):
                return False
            verb = words[i]
            singular = next((v for v in VERBS if verb in (v, plural_verb(v))), None)
            if singular is None or (verb == singular) == plural:
                return False
            verb = singular
            i += 1
    if i != len(words):
        return False
    subjects, objects = VERBS[verb]
    return HYPERNYM[phrases[0][0]] in subjects and HYPERNYM[phrases[1][0]] in objects


# --- tensors -----------------------------------------------------------------------------------------------------


@dataclass
class Task:
    """A classification task: ``ids (n, T)`` long (``<s> ... [<sep> ...]``, right-padded), ``labels (n,)``."""

    name: str
    labels_names: tuple[str, ...]
    ids: torch.Tensor
    labels: torch.Tensor
    texts: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MCBERTData:
    """The toy world's corpus and tasks. ``corpus``: ``(N, max_len)`` long ids of ``<s> line <sep> line``;
    ``sem_train``/``sem_test``, ``syn_train``/``syn_test``: :class:`Task`; ``vocab``: the token list."""

    vocab: list[str]
    corpus: torch.Tensor
    valid: torch.Tensor
    sem_train: Task
    sem_test: Task
    syn_train: Task
    syn_test: Task
    max_len: int

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def id(self, token: str) -> int:
        return self.index[token]

    def encode(self, *parts: Sequence[str]) -> torch.Tensor:
        """``<s> part <sep> part ...`` -> ``(max_len,)`` long ids, right-padded; an unknown word or a sequence
        longer than ``max_len`` is a ``ValueError``."""
        index = self.index
        tokens = [BOS]
        for k, part in enumerate(parts):
            tokens += ([SEP] if k else []) + list(part)
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise ValueError(f"unknown tokens {unknown}: the toy world's vocabulary has {len(self.vocab)} tokens")
        if len(tokens) > self.max_len:
            raise ValueError(f"sequence of {len(tokens)} tokens is longer than max_len={self.max_len}: {tokens}")
        ids = torch.zeros(self.max_len, dtype=torch.long)
        ids[: len(tokens)] = torch.tensor([index[t] for t in tokens])
        return ids

    def decode(self, ids: torch.Tensor) -> str:
        """Ids -> text, padding dropped."""
        return " ".join(self.vocab[int(i)] for i in ids if int(i) != 0)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Random corpus batches ``(batch_size, max_len)``, forever."""
        while True:
            order = torch.randperm(len(self.corpus), generator=generator)
            for k in range(0, len(order) - batch_size + 1, batch_size):
                yield self.corpus[order[k : k + batch_size]]


def _task(data: MCBERTData, name: str, names: tuple[str, ...], rows: list[tuple[list[list[str]], int]]) -> Task:
    ids = torch.stack([data.encode(*parts) for parts, _ in rows])
    texts = [" | ".join(" ".join(p) for p in parts) for parts, _ in rows]
    return Task(name, names, ids, torch.tensor([label for _, label in rows]), texts)


def make_world(
    corpus_size: int, task_size: int, test_size: int, fact_rate: float = 0.15, seed: int = 0, max_len: int = 18
) -> MCBERTData:
    """The corpus (``corpus_size`` pairs of lines, plus 256 for validation) and the two tasks (``task_size``
    training and ``test_size`` test examples each, balanced), all drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)

    def line() -> list[str]:
        return fact(rng) if rng.random() < fact_rate else sentence(rng)

    empty = Task("", (), torch.zeros(0, max_len, dtype=torch.long), torch.zeros(0, dtype=torch.long), [])
    data = MCBERTData(vocabulary(), torch.zeros(0), torch.zeros(0), empty, empty, empty, empty, max_len)
    lines = torch.stack([data.encode(line(), line()) for _ in range(corpus_size + 256)])
    data.corpus, data.valid = lines[:corpus_size], lines[corpus_size:]

    def sem(n: int, held_out: bool) -> list[tuple[list[list[str]], int]]:
        rows = []
        for k in range(n):  # entailment, neutral, contradiction x 2 (noun -> class, class -> noun)
            label = (0, 1, 2, 2)[k % 4]
            p, h = sem_pair(rng, SEM_LABELS[label], held_out, specific=k % 4 == 2)
            rows.append(([p, h], label))
        rng.shuffle(rows)
        return rows

    def syn(n: int) -> list[tuple[list[list[str]], int]]:
        rows = [([syn_example(rng, bool(k % 2))], k % 2) for k in range(n)]
        rng.shuffle(rows)
        return rows

    data.sem_train, data.sem_test = (
        _task(data, "SEM", SEM_LABELS, sem(task_size, held_out=False)),
        _task(data, "SEM", SEM_LABELS, sem(test_size, held_out=True)),
    )
    data.syn_train, data.syn_test = (
        _task(data, "SYN", SYN_LABELS, syn(task_size)),
        _task(data, "SYN", SYN_LABELS, syn(test_size)),
    )
    return data


def load_data(config: MCBERTConfig) -> MCBERTData:
    """The toy world of ``config`` (``corpus_size``, ``task_size``, ``test_size``, ``fact_rate``, ``data_seed``)."""
    return make_world(
        config.corpus_size, config.task_size, config.test_size, config.fact_rate, config.data_seed, config.max_len
    )
