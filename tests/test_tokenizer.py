"""WordPiece tokenizer: special-token layout, templates, segments, truncation, files."""

import json

import numpy as np
import pytest

from tflm_embbert.common import paths
from tflm_embbert.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID, Tokenizer


def test_special_token_layout(tiny_tokenizer):
    assert SPECIAL_TOKENS == ("[PAD]", "[UNK]", "[CLS]", "[MASK]", "[SEP]")
    assert tiny_tokenizer.vocab[:5] == list(SPECIAL_TOKENS)


def test_single_template_and_segments(tiny_tokenizer):
    ids, segments = tiny_tokenizer.encode("The quick fox", seq_len=10)
    n = len(tiny_tokenizer.tokenize("The quick fox"))
    assert ids[0] == CLS_ID and ids[n + 1] == SEP_ID
    assert ids[n + 2 :] == [PAD_ID] * (10 - n - 2)
    assert segments == [1] * (n + 2) + [0] * (10 - n - 2)


def test_pair_template_and_segments(tiny_tokenizer):
    a, b = "the dog", "jumps over"
    ids, segments = tiny_tokenizer.encode(a, b)
    na, nb = len(tiny_tokenizer.tokenize(a)), len(tiny_tokenizer.tokenize(b))
    assert ids[0] == CLS_ID and ids[na + 1] == SEP_ID and ids[-1] == SEP_ID
    assert len(ids) == na + nb + 3
    # 1 up to and including the first [SEP], 2 after it.
    assert segments == [1] * (na + 2) + [2] * (nb + 1)


def test_truncation_keeps_template(tiny_tokenizer):
    long_text = " ".join(["jolly boxing judges"] * 20)
    ids, segments = tiny_tokenizer.encode_batch([long_text, "dog"], [long_text, long_text], 16)
    assert ids.shape == (2, 16) and ids.dtype == np.int32
    assert ids[0, 0] == CLS_ID and ids[0, -1] == SEP_ID
    assert (ids[0] == SEP_ID).sum() == 2
    assert set(segments[0]) == {1, 2}


def test_unknown_and_lowercase_accents(tiny_tokenizer):
    assert tiny_tokenizer.tokenize("THE Fox") == tiny_tokenizer.tokenize("the fox")
    assert tiny_tokenizer.tokenize("thé") == tiny_tokenizer.tokenize("the")
    ids, _ = tiny_tokenizer.encode("🙂")
    assert ids == [CLS_ID, UNK_ID, SEP_ID]


def test_save_load_round_trip(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path)
    assert (tmp_path / "vocab.txt").read_text().splitlines() == tiny_tokenizer.vocab
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert settings["lowercase"] and settings["strip_accents"]
    loaded = Tokenizer.load(tmp_path)
    texts = ["the lazy dog", "Quick brown FOX jumps!", "", "   ", "naïve café ünïcode"]
    assert loaded.encode_batch(texts, seq_len=12)[0].tolist() == \
        tiny_tokenizer.encode_batch(texts, seq_len=12)[0].tolist()


def test_bad_vocab_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"expected special token '\[PAD\]' at id 0"):
        Tokenizer(["hello", "[UNK]"])
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        Tokenizer.load(tmp_path)


def test_shipped_tokenizer():
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    assert tokenizer.vocab_size == 8192
    assert tokenizer.vocab[:5] == list(SPECIAL_TOKENS)
    assert len(set(tokenizer.vocab)) == 8192
    pieces = tokenizer.tokenize("Play some music by the Beatles")
    assert "[UNK]" not in pieces and pieces[0] == "play"
