"""A small synthetic corpus whose classes are told apart by their vocabulary."""

import random

VOCAB = {
    "positive": ["great", "wonderful", "love", "excellent", "happy", "delightful", "superb", "enjoyed"],
    "negative": ["awful", "terrible", "hate", "boring", "sad", "broken", "worst", "disappointing"],
    "neutral": ["average", "okay", "ordinary", "fine", "typical", "standard", "plain", "moderate"],
}
FILLER = ["the", "film", "service", "product", "was", "really", "quite", "today", "and", "it", "felt"]


def sentence(label: str, rng: random.Random) -> str:
    words = rng.sample(FILLER, 5) + rng.sample(VOCAB[label], 2)
    rng.shuffle(words)
    return " ".join(words)


def labeled_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    labels = list(VOCAB)
    return [(sentence(labels[i % 3], rng), labels[i % 3]) for i in range(n)]


def annotated_tasks(n: int, seed: int = 0, control: str = "sentiment") -> list[dict]:
    return [
        {
            "id": i + 1,
            "data": {"text": text},
            "annotations": [
                {
                    "id": i + 1,
                    "was_cancelled": False,
                    "result": [
                        {"from_name": control, "to_name": "text", "type": "choices", "value": {"choices": [label]}}
                    ],
                }
            ],
        }
        for i, (text, label) in enumerate(labeled_texts(n, seed))
    ]
