"""WordPiece tokenizer for EmbBERT, built on the `tokenizers` library.

On disk a tokenizer is two plain files, so a C++ port can reproduce it exactly:
  vocab.txt              one token per line; the line number is the id
  tokenizer_config.json  the normalisation / splitting settings below

Layout: [PAD]=0 [UNK]=1 [CLS]=2 [MASK]=3 [SEP]=4. Single input: [CLS] A [SEP]; pairs:
[CLS] A [SEP] B [SEP]. Segment ids: 1 up to and including the first [SEP], 2 after it, 0 for [PAD].
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from tflm_embbert.common.errors import MissingFileError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[MASK]", "[SEP]")
PAD_ID, UNK_ID, CLS_ID, MASK_ID, SEP_ID = range(5)
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything besides the vocabulary that decides the ids of a text."""

    lowercase: bool = True
    strip_accents: bool = True
    clean_text: bool = True  # drop control chars, map all whitespace to " "
    handle_chinese_chars: bool = True  # put spaces around CJK ideographs
    continuing_subword_prefix: str = "##"
    max_input_chars_per_word: int = 100  # longer words become [UNK]
    special_tokens: tuple[str, ...] = SPECIAL_TOKENS


class Tokenizer:
    """Encodes text (or text pairs) into fixed-length token and segment ids."""

    def __init__(self, vocab: Sequence[str], config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        self.vocab = list(vocab)
        for expected_id, token in enumerate(self.config.special_tokens):
            if expected_id >= len(self.vocab) or self.vocab[expected_id] != token:
                found = self.vocab[expected_id] if expected_id < len(self.vocab) else "nothing"
                raise ValueError(
                    f"vocabulary: expected special token {token!r} at id {expected_id}, "
                    f"got {found!r}"
                )
        self._hf = _build_hf_tokenizer(
            {token: i for i, token in enumerate(self.vocab)}, self.config
        )

    # ----------------------------------------------------------------- files
    @classmethod
    def load(cls, directory: str | os.PathLike) -> Tokenizer:
        directory = Path(directory)
        vocab_path, config_path = directory / VOCAB_FILE, directory / CONFIG_FILE
        for path in (vocab_path, config_path):
            if not path.is_file():
                raise MissingFileError(f"{path}: tokenizer file not found")
        vocab = vocab_path.read_text(encoding="utf-8").split("\n")
        if vocab and vocab[-1] == "":
            vocab.pop()
        raw = json.loads(config_path.read_text(encoding="utf-8"))
        raw["special_tokens"] = tuple(raw.get("special_tokens", SPECIAL_TOKENS))
        try:
            config = TokenizerConfig(**raw)
        except TypeError as err:
            raise ValueError(f"{config_path}: unexpected tokenizer setting ({err})") from None
        return cls(vocab, config)

    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / VOCAB_FILE).write_text("\n".join(self.vocab) + "\n", encoding="utf-8")
        (directory / CONFIG_FILE).write_text(
            json.dumps(asdict(self.config), indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 8192,
        config: TokenizerConfig | None = None,
        min_frequency: int = 2,
    ) -> Tokenizer:
        """Learns a WordPiece vocabulary of `vocab_size` tokens from `texts`."""
        config = config or TokenizerConfig()
        hf = _build_hf_tokenizer(None, config)
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(config.special_tokens),
            continuing_subword_prefix=config.continuing_subword_prefix,
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        learned = hf.get_vocab()
        vocab = [token for token, _ in sorted(learned.items(), key=lambda item: item[1])]
        return cls(vocab, config)

    # -------------------------------------------------------------- encoding
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of `text`, without special tokens."""
        return self._hf.encode(text, add_special_tokens=False).tokens

    def encode(
        self, text_a: str, text_b: str | None = None, seq_len: int | None = None
    ) -> tuple[list[int], list[int]]:
        """Token and segment ids of one input; padded/truncated to `seq_len` if given."""
        ids, segments = self.encode_batch([text_a], None if text_b is None else [text_b], seq_len)
        if seq_len is None:
            return ids[0], segments[0]
        return ids[0].tolist(), segments[0].tolist()

    def encode_batch(
        self,
        texts_a: Sequence[str],
        texts_b: Sequence[str | None] | None = None,
        seq_len: int | None = None,
        add_special_tokens: bool = True,
    ):
        """Token and segment ids for many inputs.

        With `seq_len` returns two int32 arrays of shape (n, seq_len) (longest-first truncation,
        [PAD] after the text); without it, two lists of lists of the natural lengths.
        """
        if texts_b is not None and len(texts_b) != len(texts_a):
            raise ValueError(f"texts_b: expected {len(texts_a)} items, got {len(texts_b)}")
        if seq_len is not None and seq_len < 3 + (texts_b is not None):
            raise ValueError(
                f"seq_len: expected at least 4 for pairs / 3 for single, got {seq_len}"
            )
        inputs = (
            list(texts_a)
            if texts_b is None
            else [a if b is None else (a, b) for a, b in zip(texts_a, texts_b, strict=True)]
        )
        hf = self._hf if seq_len is None else self._fixed_length(seq_len)
        encodings = hf.encode_batch(inputs, add_special_tokens=add_special_tokens)
        if seq_len is None:
            return [e.ids for e in encodings], [e.type_ids for e in encodings]
        ids = np.array([e.ids for e in encodings], dtype=np.int32)
        segments = np.array([e.type_ids for e in encodings], dtype=np.int32)
        return ids, segments

    def _fixed_length(self, seq_len: int) -> HFTokenizer:
        cache = self.__dict__.setdefault("_fixed_cache", {})
        if seq_len not in cache:
            cache[seq_len] = _copy_with_length(self._hf, seq_len)
        return cache[seq_len]

    def decode(self, ids: Iterable[int]) -> str:
        return self._hf.decode([int(i) for i in ids], skip_special_tokens=True)


def _build_hf_tokenizer(vocab: dict[str, int] | None, config: TokenizerConfig) -> HFTokenizer:
    unk = config.special_tokens[UNK_ID]
    model = models.WordPiece(
        vocab=vocab or {},
        unk_token=unk,
        max_input_chars_per_word=config.max_input_chars_per_word,
        continuing_subword_prefix=config.continuing_subword_prefix,
    )
    hf = HFTokenizer(model)
    hf.normalizer = normalizers.BertNormalizer(
        clean_text=config.clean_text,
        handle_chinese_chars=config.handle_chinese_chars,
        strip_accents=config.strip_accents,
        lowercase=config.lowercase,
    )
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece(prefix=config.continuing_subword_prefix)
    if vocab:
        cls_token, sep_token = config.special_tokens[CLS_ID], config.special_tokens[SEP_ID]
        hf.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:1 $A:1 {sep_token}:1",
            pair=f"{cls_token}:1 $A:1 {sep_token}:1 $B:2 {sep_token}:2",
            special_tokens=[(cls_token, CLS_ID), (sep_token, SEP_ID)],
        )
    return hf


def _copy_with_length(hf: HFTokenizer, seq_len: int) -> HFTokenizer:
    fixed = HFTokenizer.from_str(hf.to_str())
    fixed.enable_truncation(max_length=seq_len, strategy="longest_first")
    fixed.enable_padding(
        length=seq_len, pad_id=PAD_ID, pad_type_id=0, pad_token=SPECIAL_TOKENS[PAD_ID]
    )
    return fixed
