"""A dictionary "NLP pipeline" with spaCy's surface: ``load(name)(text).ents`` gives spans
with ``text``, ``start_char``, ``end_char`` and ``label_``. Stands in for spaCy in the NER
test model."""

import re
from dataclasses import dataclass

GAZETTEER = {
    "PER": ["Ada Lovelace", "Alan Turing", "Grace Hopper"],
    "ORG": ["Acme Corp", "United Nations", "Analytical Society"],
    "GPE": ["London", "Paris", "Berlin"],
}
DATE = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


@dataclass
class Span:
    text: str
    start_char: int
    end_char: int
    label_: str


@dataclass
class Doc:
    text: str
    ents: list


class Language:
    def __init__(self, name):
        self.name = name
        self.labels = (*GAZETTEER, "DATE")
        names = sorted(((n, label) for label, ns in GAZETTEER.items() for n in ns), key=lambda p: -len(p[0]))
        self._pattern = re.compile("|".join(rf"\b{re.escape(n)}\b" for n, _ in names))
        self._label = dict(names)

    def __call__(self, text):
        ents = [Span(m.group(), m.start(), m.end(), self._label[m.group()]) for m in self._pattern.finditer(text)]
        ents += [Span(m.group(), m.start(), m.end(), "DATE") for m in DATE.finditer(text)]
        return Doc(text, sorted(ents, key=lambda e: e.start_char))


def load(name):
    return Language(name)
