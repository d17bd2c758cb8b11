"""Tests for tflm_embbert.data.datasets.

Tiny fixture files (one per format, malformed ones included) are written into tmp_path; the
real-data tests at the end load every dataset of shared/data and check split sizes and label
counts against its README / SOURCE.md files. They are skipped when the data is absent; set
EMBBERT_DATA_DIR to point them elsewhere.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tflm_embbert.data.datasets import CYBERBULLYING_LABELS, TASKS, load_task, task_texts
from tflm_embbert.data.examples import DataFormatError, Example, split_train_validation

DATA_DIR = Path(
    os.environ.get("EMBBERT_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data"
)


# --------------------------------------------------------------------------- helpers
def write(path: Path, text: str) -> Path:
    """Write UTF-8 text exactly as given (gzipped for *.gz), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def tsv(*rows: tuple) -> str:
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def expect_format_error(path: Path, line: int, fn, *args, **kwargs) -> DataFormatError:
    """Call fn, expect a one-line DataFormatError naming `path` and `line`."""
    with pytest.raises(DataFormatError) as info:
        fn(*args, **kwargs)
    err = info.value
    message = str(err)
    assert message.startswith(f"{path}:{line}: expected "), message
    assert ", got " in message and "\n" not in message, message
    assert (Path(err.path), err.line) == (path, line)
    return err


def make_sst2(root: Path, n_train: int = 10) -> Path:
    folder = root / "SST-2"
    rows = [(f'sentence {i} with a bare " quote ', i % 2) for i in range(n_train)]
    write(folder / "train.tsv", tsv(("sentence", "label"), *rows))
    write(folder / "dev.tsv", tsv(("sentence", "label"), ("good film", 1), ("bad film", 0)))
    return folder


# --------------------------------------------------------------------------- GLUE
def test_sst2_fixture(tmp_path):
    make_sst2(tmp_path)
    data = load_task("SST-2", tmp_path, val_fraction=0.2, seed=0)  # alias of "sst2"
    assert data.name == "sst2" and data.metric == "accuracy" and data.test_split == "dev"
    assert data.label_names == ["negative", "positive"] and data.num_labels == 2
    assert not data.is_regression
    assert (len(data.train), len(data.validation), len(data.test)) == (8, 2, 2)
    assert data.test == [Example("good film", None, 1), Example("bad film", None, 0)]
    # quoting is disabled: the bare quote and trailing space survive
    assert data.train[0].text_a == 'sentence 0 with a bare " quote '


def test_glue_header_and_label_errors(tmp_path):
    folder = make_sst2(tmp_path)
    train = write(folder / "train.tsv", tsv(("text", "label"), ("a", 0)))
    expect_format_error(train, 1, load_task, "sst2", tmp_path)
    write(train, tsv(("sentence", "label"), ("a", 0), ("b", 2)))
    err = expect_format_error(train, 3, load_task, "sst2", tmp_path)
    assert "'2'" in err.got
    write(train, tsv(("sentence", "label"), ("a", 0), ("  ", 1)))
    expect_format_error(train, 3, load_task, "sst2", tmp_path)  # empty text
    write(train, tsv(("sentence", "label"), ("a", 0)) + "\n" + tsv(("b", 1)))
    err = expect_format_error(train, 3, load_task, "sst2", tmp_path)  # blank line
    assert err.got == "an empty line"


def test_cola_no_header_and_column_count(tmp_path):
    folder = tmp_path / "CoLA"
    write(folder / "train.tsv", tsv(("gj04", 1, "", "Good one."), ("gj04", 0, "*", "Bad one a.")))
    dev = write(folder / "dev.tsv", tsv(("gj04", 1, "", 'He said "hi".')))
    data = load_task("cola", tmp_path, val_fraction=0.0)
    assert data.metric == "mcc" and data.label_names == ["unacceptable", "acceptable"]
    assert [e.label for e in data.train] == [1, 0] and data.validation == []
    assert data.test == [Example('He said "hi".', None, 1)]
    write(dev, tsv(("gj04", 1, "", "ok"), ("gj04", 1, "three columns only")))
    err = expect_format_error(dev, 2, load_task, "cola", tmp_path)
    assert err.expected == "4 tab-separated columns" and err.got == "3 columns"


MRPC_HEADER = ("\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String")


def make_mrpc(root: Path) -> Path:
    folder = root / "MRPC"
    pairs = [(i % 2, 100 + i, 200 + i, f'a{i} " b', f"c{i}") for i in range(6)]
    write(folder / "original" / "msr_paraphrase_train.txt", tsv(MRPC_HEADER, *pairs))
    write(folder / "original" / "dev_ids.tsv", tsv((101, 201), (104, 204)))
    write(folder / "dev.tsv", tsv(MRPC_HEADER, (1, 101, 201, "a1", "c1"), (0, 104, 204, "x", "y")))
    return folder


def test_mrpc_rebuilds_train_without_dev_pairs(tmp_path):
    make_mrpc(tmp_path)
    data = load_task("mrpc", tmp_path, val_fraction=0.0)  # no train.tsv needed
    assert data.metric == "f1" and data.test_split == "dev"
    assert [e.text_b for e in data.train] == ["c0", "c2", "c3", "c5"]
    assert data.train[0] == Example('a0 " b', "c0", 0)
    assert [e.label for e in data.test] == [1, 0]


def test_mrpc_dev_pair_missing_from_train(tmp_path):
    folder = make_mrpc(tmp_path)
    dev_ids = write(folder / "original" / "dev_ids.tsv", tsv((101, 201), (999, 998)))
    expect_format_error(dev_ids, 2, load_task, "mrpc", tmp_path)


STSB_HEADER = (
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
)


def stsb_row(i, score):
    return (
        i,
        "main-captions",
        "MSRvid",
        "2012test",
        i,
        "none",
        "none",
        f"A {i}.",
        f"B {i}.",
        score,
    )


def test_stsb_regression_and_bad_floats(tmp_path):
    folder = tmp_path / "STS-B"
    train = write(folder / "train.tsv", tsv(STSB_HEADER, stsb_row(0, "5.000"), stsb_row(1, "0")))
    write(folder / "dev.tsv", tsv(STSB_HEADER, stsb_row(0, "3.800")))
    data = load_task("stsb", tmp_path, val_fraction=0.0)
    assert data.is_regression and data.num_labels == 1 and data.label_names is None
    assert data.metric == "spearman"
    assert data.train[0] == Example("A 0.", "B 0.", 5.0) and isinstance(data.test[0].label, float)
    for bad in ("abc", "5.5", "nan", ""):
        write(train, tsv(STSB_HEADER, stsb_row(0, "1.0"), stsb_row(1, bad)))
        err = expect_format_error(train, 3, load_task, "stsb", tmp_path)
        assert err.expected == "a float score in [0, 5]"


def test_rte_string_labels_and_unknown_label(tmp_path):
    folder = tmp_path / "RTE"
    header = ("index", "sentence1", "sentence2", "label")
    write(
        folder / "train.tsv",
        tsv(header, (0, "p", "h", "not_entailment"), (1, "p", "h", "entailment")),
    )
    dev = write(folder / "dev.tsv", tsv(header, (0, "p", "h", "entailment")))
    data = load_task("rte", tmp_path, val_fraction=0.0)
    assert data.label_names == ["entailment", "not_entailment"]
    assert [e.label for e in data.train] == [1, 0]
    write(dev, tsv(header, (0, "p", "h", "entailment"), (1, "p", "h", "neutral")))
    err = expect_format_error(dev, 3, load_task, "rte", tmp_path)
    assert err.got == "'neutral'"


def test_wnli(tmp_path):
    header = ("index", "sentence1", "sentence2", "label")
    write(tmp_path / "WNLI" / "train.tsv", tsv(header, (0, "s1", "s2", 1), (1, "s3", "s4", 0)))
    write(tmp_path / "WNLI" / "dev.tsv", tsv(header, (0, "s5", "s6", 0)))
    data = load_task("wnli", tmp_path, val_fraction=0.5)
    assert data.label_names == ["not_entailment", "entailment"] and data.test_split == "dev"
    assert len(data.train) == len(data.validation) == 1
    assert data.test == [Example("s5", "s6", 0)]


# --------------------------------------------------------------------------- other tasks
def test_emotion_semicolon_format(tmp_path):
    folder = tmp_path / "emotion"
    train = write(folder / "train.txt", "text;label_name\ni feel sad;sadness\ni am happy;joy\n")
    write(folder / "test.txt", "text;label_name\nso scared;fear\n")  # no val.txt needed
    data = load_task("emotion", tmp_path, val_fraction=0.0)
    assert data.label_names == ["sadness", "joy", "love", "anger", "fear", "surprise"]
    assert [e.label for e in data.train] == [0, 1] and data.test[0].label == 4
    write(train, "text;label_name\ni feel sad;sadness\ni am; happy;joy\n")
    err = expect_format_error(train, 3, load_task, "emotion", tmp_path)
    assert err.expected == "2 semicolon-separated columns"
    write(train, "text;label_name\ni feel sad;sadness\ni am happy;happiness\n")
    expect_format_error(train, 3, load_task, "emotion", tmp_path)


def make_snips(root: Path) -> Path:
    folder = root / "snips"
    write(folder / "intent_label.txt", "UNK\nPlayMusic\nGetWeather\n")
    write(folder / "train" / "seq.in", "play some jazz \nweather in paris\nplay abba\n")
    write(folder / "train" / "label", "PlayMusic\nGetWeather\nPlayMusic\n")
    write(folder / "test" / "seq.in", "is it raining\n")
    write(folder / "test" / "label", "GetWeather\n")
    return folder


def test_snips(tmp_path):
    folder = make_snips(tmp_path)
    data = load_task("snips", tmp_path, val_fraction=0.0)
    assert data.label_names == ["PlayMusic", "GetWeather"]  # file order, UNK skipped
    assert data.train[0] == Example("play some jazz ", None, 0)
    assert data.test == [Example("is it raining", None, 1)]

    label = write(folder / "train" / "label", "PlayMusic\nGetWeather\n")  # one line short
    err = expect_format_error(label, 3, load_task, "snips", tmp_path)
    assert err.got == "end of file"
    write(label, "PlayMusic\nBookFlight\nPlayMusic\n")
    expect_format_error(label, 2, load_task, "snips", tmp_path)
    write(label, "PlayMusic\nGetWeather\nPlayMusic\n")
    seq_in = write(folder / "train" / "seq.in", "play some jazz\n\nplay abba\n")
    expect_format_error(seq_in, 2, load_task, "snips", tmp_path)


def make_ag_news(root: Path) -> Path:
    folder = root / "ag_news"
    write(
        folder / "train_subset_alps10k.tsv",
        tsv(
            ("Stocks fell #39;sharply#39;.", "Business"),
            ('"Officials said ""major neglect"" led to it."', "World"),
            ('"Halo 2" sells well.', "Sci/Tech"),
        ),
    )
    write(
        folder / "test.csv",
        '"2","Title here","Team wins, again."\n"4","T","Line one\\line ""two"""\n',
    )
    return folder


def test_ag_news_description_only_and_unquoting(tmp_path):
    folder = make_ag_news(tmp_path)
    data = load_task("ag_news", tmp_path, val_fraction=0.0)
    assert data.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert [e.text_a for e in data.train] == [
        "Stocks fell #39;sharply#39;.",
        'Officials said "major neglect" led to it.',  # CSV quoting undone
        '"Halo 2" sells well.',  # a real leading quote is kept
    ]
    assert [e.label for e in data.train] == [2, 0, 3]
    assert data.test == [  # description only, class_index - 1
        Example("Team wins, again.", None, 1),
        Example('Line one\\line "two"', None, 3),
    ]
    # an optional header row in the train TSV is skipped
    train = folder / "train_subset_alps10k.tsv"
    write(train, tsv(("sentence", "label")) + train.read_text())
    assert len(load_task("ag_news", tmp_path, val_fraction=0.0).train) == 3

    test = write(folder / "test.csv", '"2","T","ok"\n"5","T","bad class"\n')
    err = expect_format_error(test, 2, load_task, "ag_news", tmp_path)
    assert err.got == "'5'"
    write(test, '"2","T","ok"\n"3","only title"\n')
    expect_format_error(test, 2, load_task, "ag_news", tmp_path)


def test_imdb_gzip_no_quoting(tmp_path):
    folder = tmp_path / "imdb"
    write(
        folder / "train.tsv.gz",
        tsv(("text", "label"), ("awful<br />film", "neg"), ('"Great" film', "pos")),
    )
    test = write(folder / "test.tsv.gz", tsv(("text", "label"), ("meh", "neg")))
    data = load_task("imdb", tmp_path, val_fraction=0.0)
    assert data.label_names == ["neg", "pos"]
    assert data.train == [Example("awful<br />film", None, 0), Example('"Great" film', None, 1)]
    write(test, tsv(("text", "label"), ("meh", "neg"), ("fine", "positive")))
    expect_format_error(test, 3, load_task, "imdb", tmp_path)


def make_cyberbullying(root: Path, per_class: int = 10) -> Path:
    lines = ["tweet_text,cyberbullying_type"]
    for c in CYBERBULLYING_LABELS:
        lines += [f"tweet {i} about {c},{c}" for i in range(per_class)]
    lines.append('"multi-line, quoted\r\ntweet with ""quotes""",age')
    lines.append("tweet 0 about age,age")  # exact duplicate: dropped
    path = root / "cyberbullying" / "cyberbullying_tweets.csv.gz"
    write(path, "\n".join(lines) + "\n")
    return path


def test_cyberbullying_fixed_stratified_split(tmp_path):
    make_cyberbullying(tmp_path)
    runs = [load_task("cyberbullying", tmp_path, seed=s) for s in (0, 1)]
    for data in runs:
        assert data.label_names == CYBERBULLYING_LABELS and data.test_split == "test"
        assert len(data.train) + len(data.validation) + len(data.test) == 61  # 6*10 + 1
        # round(20 %) per class: 11 age tweets -> 2, 10 per other class -> 2
        assert Counter(e.label for e in data.test) == {i: 2 for i in range(6)}
    assert runs[0].test == runs[1].test  # test split independent of seed
    assert runs[0].validation != runs[1].validation
    texts = {e.text_a for d in runs for e in d.train + d.validation + d.test}
    assert 'multi-line, quoted\r\ntweet with "quotes"' in texts


def test_cyberbullying_error_line_after_multiline_record(tmp_path):
    path = tmp_path / "cyberbullying" / "cyberbullying_tweets.csv.gz"
    write(path, 'tweet_text,cyberbullying_type\n"two\nlines",age\nsome tweet,bullying\n')
    expect_format_error(path, 4, load_task, "cyberbullying", tmp_path)
    write(path, 'tweet_text,cyberbullying_type\n"two\nlines",age\n"unclosed,age\n')
    expect_format_error(path, 4, load_task, "cyberbullying", tmp_path)


# --------------------------------------------------------------------------- common behaviour
def test_missing_file_names_path_and_task(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_task("sst2", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "SST-2" / "train.tsv") in message and "'sst2'" in message
    assert "\n" not in message
    folder = make_snips(tmp_path)
    (folder / "test" / "label").unlink()
    with pytest.raises(FileNotFoundError, match="snips"):
        load_task("snips", tmp_path)


def test_unknown_task():
    with pytest.raises(ValueError, match="known tasks"):
        load_task("mnli", "/nonexistent")


def test_registry_metrics():
    assert set(TASKS) == {
        "snips",
        "emotion",
        "sst2",
        "cola",
        "mrpc",
        "stsb",
        "rte",
        "wnli",
        "ag_news",
        "imdb",
        "cyberbullying",
    }
    metrics = {name: spec.metric for name, spec in TASKS.items()}
    assert (metrics["cola"], metrics["mrpc"], metrics["stsb"]) == ("mcc", "f1", "spearman")
    assert {metrics[n] for n in TASKS if n not in ("cola", "mrpc", "stsb")} == {"accuracy"}


def test_split_train_validation():
    items = list(range(100))
    train, val = split_train_validation(items, 0.1, seed=0)
    assert len(val) == 10 and len(train) == 90
    assert set(train).isdisjoint(val) and sorted(train + val) == items
    assert train == sorted(train) and val == sorted(val)  # input order kept
    assert split_train_validation(items, 0.1, seed=0) == (train, val)
    assert split_train_validation(items, 0.1, seed=1)[1] != val
    assert split_train_validation(items, 0.0, seed=0) == (items, [])
    assert len(split_train_validation(items[:3], 0.01, seed=0)[1]) == 1  # at least one
    with pytest.raises(ValueError):
        split_train_validation(items, 1.0, seed=0)


def test_load_task_seeds_and_train_limit(tmp_path):
    make_sst2(tmp_path, n_train=50)
    a, b, c = (load_task("sst2", tmp_path, seed=s) for s in (0, 0, 1))
    assert (a.train, a.validation) == (b.train, b.validation)
    assert a.validation != c.validation and a.test == c.test
    assert len(a.validation) == 5 and set(a.train).isdisjoint(a.validation)
    small = load_task("sst2", tmp_path, seed=0, train_limit=7)
    smaller = load_task("sst2", tmp_path, seed=0, train_limit=3)
    assert small.validation == a.validation and len(small.train) == 7
    assert set(smaller.train) <= set(small.train) <= set(a.train)
    assert {e.label for e in small.train} == {0, 1}  # a seeded subset, not the file head


def test_task_texts_reads_train_only(tmp_path):
    make_mrpc(tmp_path)
    texts = list(task_texts("mrpc", tmp_path))
    assert texts == ['a0 " b', "c0", 'a2 " b', "c2", 'a3 " b', "c3", 'a5 " b', "c5"]
    assert "x" not in texts  # dev.tsv (the test split) text


def test_module_does_not_import_tensorflow():
    code = "import sys, tflm_embbert.data.datasets; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_format_error_message_is_one_line():
    err = DataFormatError("f.tsv", 3, "a label", repr("two\nlines"))
    assert str(err) == "f.tsv:3: expected a label, got 'two\\nlines'"
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------- real data
# task: (official train rows, test rows, train label counts, test label counts); the table and
# where each figure comes from are in real_splits.json.
REAL = {
    name: tuple(row)
    for name, row in json.loads((Path(__file__).parent / "real_splits.json").read_text()).items()
    if not name.startswith("_")
}


def label_counts(data, examples):
    return dict(Counter(data.label_names[e.label] for e in examples))


@pytest.mark.parametrize("name", list(REAL))
def test_real_dataset_splits(name):
    if not DATA_DIR.is_dir():
        pytest.skip(f"no dataset folder at {DATA_DIR} (set EMBBERT_DATA_DIR)")
    n_train, n_test, train_counts, test_counts = REAL[name]
    a = load_task(name, DATA_DIR, seed=0)
    b = load_task(name, DATA_DIR, seed=1)
    for data in (a, b):
        assert len(data.train) + len(data.validation) == n_train
        assert len(data.validation) == int(0.1 * n_train + 0.5)  # round half up
        assert len(data.test) == n_test
    # same partition of the same official train split; different validation; same test
    assert Counter(a.train + a.validation) == Counter(b.train + b.validation)
    assert a.validation != b.validation
    assert a.test == b.test
    assert a.metric == TASKS[name].metric
    if a.is_regression:
        assert all(0.0 <= e.label <= 5.0 for e in a.train + a.validation + a.test)
    else:
        assert label_counts(a, a.test) == test_counts
        if train_counts is not None:
            assert label_counts(a, a.train + a.validation) == train_counts


def test_real_mrpc_contains_pair_missing_from_glue_train_tsv():
    if not DATA_DIR.is_dir():
        pytest.skip(f"no dataset folder at {DATA_DIR} (set EMBBERT_DATA_DIR)")
    texts = set(task_texts("mrpc", DATA_DIR))
    assert (
        'Officials at Brandeis said this was an " extremely heartrending " time for the '
        "campus ." in texts
    )
