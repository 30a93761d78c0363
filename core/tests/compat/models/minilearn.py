"""A tiny scikit-learn look-alike for the text classifier test model (no dependency):
``make_pipeline(alpha)`` returns a multinomial naive Bayes over lower-cased words with
``fit(texts, label_indices)`` and ``predict_proba(texts)``."""

import math
import re
from collections import Counter, defaultdict

WORD = re.compile(r"\w+", re.UNICODE)


class NaiveBayesText:
    def __init__(self, alpha=1.0):
        self.alpha = alpha
        self.classes_ = []
        self.word_counts = {}
        self.class_counts = {}

    def fit(self, X, y):
        words = defaultdict(Counter)
        classes = Counter()
        for text, label in zip(X, y, strict=True):
            classes[label] += 1
            words[label].update(WORD.findall(str(text).lower()))
        self.classes_ = sorted(classes)
        self.word_counts = {c: dict(words[c]) for c in self.classes_}
        self.class_counts = dict(classes)
        return self

    def predict_proba(self, X):
        vocabulary = {w for counts in self.word_counts.values() for w in counts}
        total = sum(self.class_counts.values())
        rows = []
        for text in X:
            tokens = WORD.findall(str(text or "").lower())
            logs = []
            for c in self.classes_:
                counts = self.word_counts[c]
                size = sum(counts.values()) + self.alpha * (len(vocabulary) + 1)
                score = math.log(self.class_counts[c] / total)
                score += sum(math.log((counts.get(t, 0) + self.alpha) / size) for t in tokens)
                logs.append(score)
            top = max(logs)
            exp = [math.exp(v - top) for v in logs]
            rows.append([v / sum(exp) for v in exp])
        return rows


def make_pipeline(alpha=1.0):
    return NaiveBayesText(alpha)
