"""Tiny random UIE and UIE-X models, built offline: a hand-written vocabulary (UIE), a
sentencepiece model trained in-process (UIE-X), small configs and random weights, saved with
every file Taskflow's task_path needs, so they load through the plugin's real path."""

from __future__ import annotations

import string
from pathlib import Path

CJK = "张三李四王五赵六在北京上海广州深圳工作公司人名地点机构日期金额总计发票号码供应商昨天去了。，：、"
ALPHABET = string.ascii_letters + string.digits + ".,:;-/()$%#@!?'&+€" + CJK


def build_uie(path: Path, words: list[str] = (), hidden: int = 64, layers: int = 2) -> Path:
    """A random UIE (ERNIE) with a WordPiece vocabulary of single characters plus ``words``
    (a word in the vocabulary is one token, which a tiny model learns far faster)."""
    import paddle
    from paddlenlp.transformers import UIE, ErnieConfig, ErnieTokenizer

    path.mkdir(parents=True, exist_ok=True)
    chars = sorted(set(ALPHABET.lower()))
    vocab = [
        "[PAD]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[UNK]",
        *chars,
        *("##" + c for c in chars if c.isascii() and c.isalnum()),
        *sorted({w.lower() for w in words} - set(chars)),
    ]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    ErnieTokenizer(str(path / "vocab.txt")).save_pretrained(str(path))
    paddle.seed(0)
    config = ErnieConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        type_vocab_size=4,
        task_type_vocab_size=3,
        use_task_id=True,
        pad_token_id=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    UIE(config).save_pretrained(str(path))
    return path


def _sentencepiece(path: Path, corpus: list[str]) -> None:
    import sentencepiece as spm

    # "▁c" for every character must be the highest-priority merges: ErnieLayoutTokenizer gives a
    # lone "▁" piece no offset, which misaligns Taskflow's offsets (and crashes its doc reader)
    spaced = [" ".join(ALPHABET)] * 400
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(spaced + corpus * 3),
        model_prefix=str(path / "sentencepiece.bpe"),
        vocab_size=600,
        model_type="bpe",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (path / "sentencepiece.bpe.vocab").unlink(missing_ok=True)


def build_uiex(
    path: Path, corpus: list[str], hidden: int = 64, layers: int = 2, span_logit: float | None = None
) -> Path:
    """A random UIE-X (ERNIE-Layout, whose ResNet-101 image backbone is fixed in size) with a
    sentencepiece model trained on ``corpus``. ``span_logit``: the start and end heads answer
    that logit for every token (zero weights), so which spans it marks does not depend on the
    random encoder's float rounding on a given CPU (random heads score near the threshold)."""
    import paddle
    from paddlenlp.transformers import UIEX, ErnieLayoutConfig, ErnieLayoutTokenizer

    path.mkdir(parents=True, exist_ok=True)
    _sentencepiece(path, corpus)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path / "sentencepiece.bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(3, len(sp))]  # ids 0-2: <unk>, <s>, </s>
    (path / "vocab.txt").write_text(
        "\n".join(["[CLS]", "[PAD]", "[SEP]", "[UNK]", *pieces, "[MASK]"]) + "\n", encoding="utf-8"
    )
    tokenizer = ErnieLayoutTokenizer(
        vocab_file=str(path / "vocab.txt"), sentencepiece_model_file=str(path / "sentencepiece.bpe.model")
    )
    tokenizer.save_pretrained(str(path))
    for text in [*corpus, " ".join(ALPHABET), "".join(ALPHABET)]:
        enc = tokenizer(text=text, return_offsets_mapping=True, return_dict=False)
        assert len(enc["input_ids"]) == len(enc["offset_mapping"]), f"unaligned tokens for {text!r}"
    paddle.seed(0)
    config = ErnieLayoutConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,
        max_2d_position_embeddings=1024,
        type_vocab_size=100,
        task_type_vocab_size=3,
        pad_token_id=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        image_feature_pool_shape=[7, 7, 256],
        has_visual_segment_embedding=False,
    )
    model = UIEX(config)
    if span_logit is not None:
        for head in (model.linear_start, model.linear_end):
            head.weight.set_value(paddle.zeros_like(head.weight))
            head.bias.set_value(paddle.full_like(head.bias, span_logit))
    model.save_pretrained(str(path))
    return path
