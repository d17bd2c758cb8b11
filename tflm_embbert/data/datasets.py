"""Labelled text datasets for EmbBERT fine-tuning: strict loaders and one split policy.

Every task comes back as a :class:`TaskData` with three splits:

* ``train`` / ``validation``: a fixed, seeded slice (``val_fraction``, ``seed``) of the official
  *train* split is held out as validation. Everything that is chosen (epochs, checkpoints,
  hyper-parameters) is chosen on it.
* ``test``: the labelled held-out split, which never depends on ``seed`` and is never used for
  choices. GLUE test labels are private, so for GLUE tasks it is the official dev set
  (``test_split == "dev"``); otherwise it is the official test set (``"test"``).

Both ``train`` and ``validation`` keep the order of the source file; shuffle before training
(IMDb, for instance, lists all negative reviews first).

Data layout: ``data_dir`` is a folder with one sub-folder per task, as in ``shared/data``:

==============  ==============  ======================================================  =========
task            folder          train / test files                                      metric
==============  ==============  ======================================================  =========
snips           snips           {train,test}/seq.in + label, intent_label.txt           accuracy
emotion         emotion         train.txt / test.txt (``text;label_name``)              accuracy
sst2            SST-2           train.tsv / dev.tsv                                     accuracy
cola            CoLA            train.tsv / dev.tsv (no header)                         mcc
mrpc            MRPC            original/msr_paraphrase_train.txt - dev_ids / dev.tsv   f1
stsb            STS-B           train.tsv / dev.tsv (score 0..5, regression)            spearman
rte             RTE             train.tsv / dev.tsv                                     accuracy
wnli            WNLI            train.tsv / dev.tsv                                     accuracy
ag_news         ag_news         train_subset_alps10k.tsv / test.csv                     accuracy
imdb            imdb            train.tsv.gz / test.tsv.gz                              accuracy
cyberbullying   cyberbullying   cyberbullying_tweets.csv.gz (own fixed 80/20 split)     accuracy
==============  ==============  ======================================================  =========

Files are read strictly. A wrong column count, an unknown label, an empty text or a bad score
raises :class:`DataFormatError`, whose message is one line, ``<file>:<line>: expected X, got Y``
(1-based line; for a quoted CSV record spanning several lines, the line where it starts). A
missing file raises :class:`FileNotFoundError` naming the path and the task that expected it.
Texts are returned as written in the files (no stripping, lower-casing or unescaping) except
where a task's notes below say otherwise.

Pure Python + numpy: importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tflm_embbert.data.examples import (
    DataFormatError,
    Example,
    PathLike,
    Splits,
    TaskData,
    TaskSpec,
    assemble,
    stratified_test_mask,
)
from tflm_embbert.data.readers import (
    Table,
    class_label,
    class_table,
    names_to_ids,
    nonempty_text,
    read_lines,
    read_table,
    score_label,
    show,
)

#: Cyberbullying has no official split: its test split is a stratified 20 % drawn with this
#: fixed seed, independent of the ``seed`` argument, so it is the same in every run.
CYBERBULLYING_SPLIT_SEED = 1234
CYBERBULLYING_TEST_FRACTION = 0.2


def _two_files(
    dataset: str, train_file: str, test_file: str, table: Table, label_names: list[str] | None
) -> Callable[[Path, str], Splits]:
    """Loader for a task whose train and test splits are two files with the same schema."""

    def load(folder: Path, task: str) -> Splits:
        test_name = "dev" if test_file.startswith("dev") else "test"
        return Splits(
            table.read(folder / train_file, task, f"the {dataset} train split"),
            table.read(folder / test_file, task, f"the {dataset} {test_name} split"),
            None if label_names is None else list(label_names),
        )

    return load


# --------------------------------------------------------------------------- GLUE
# All GLUE files are read with quoting disabled: sentences contain bare " characters.
_BINARY = {"0": 0, "1": 1}

# SST-2: `sentence<TAB>label` with header; 0 negative, 1 positive.
_SST2 = class_table(("sentence", "label"), "sentence", "label", _BINARY)
# CoLA: NO header; `source<TAB>label<TAB>star<TAB>sentence`; 0 unacceptable, 1 acceptable.
_COLA = class_table(
    ("source", "label", "star", "sentence"), "sentence", "label", _BINARY, header=False
)
# STS-B: 10 columns with header; label = float score in [0, 5] (regression).
_STSB = Table(
    ("index", "genre", "filename", "year", "old_index")
    + ("source1", "source2", "sentence1", "sentence2", "score"),
    "sentence1",
    "sentence2",
    "score",
    score_label("score", 0.0, 5.0),
)


def _nli_table(mapping: dict[str, int]) -> Table:
    """RTE / WNLI: `index<TAB>sentence1<TAB>sentence2<TAB>label` with header."""
    return Table(
        ("index", "sentence1", "sentence2", "label"),
        "sentence1",
        "sentence2",
        "label",
        class_label(mapping, "label"),
    )


RTE_LABELS = ["entailment", "not_entailment"]  # string labels; ids as in Hugging Face GLUE
WNLI_LABELS = ["not_entailment", "entailment"]  # 0/1 in the files
_MRPC = Table(
    ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "#1 String",
    "#2 String",
    "Quality",
    class_label(_BINARY, "Quality"),
)


def _load_mrpc(folder: Path, task: str) -> Splits:
    """MRPC: label 1 = paraphrase ("equivalent"); test = GLUE dev.tsv.

    The shipped GLUE ``train.tsv`` lacks one pair (2750203/2750153; 3,667 instead of 3,668
    rows), so the train split is rebuilt exactly as GLUE builds it: the pairs of
    ``original/msr_paraphrase_train.txt`` minus those listed in ``original/dev_ids.tsv``,
    in file order. ``train.tsv`` itself is not read. Every dev id pair must occur in the
    original train file.
    """
    dev_ids_path = folder / "original" / "dev_ids.tsv"
    dev_ids: dict[tuple[str, str], int] = {}  # id pair -> line in dev_ids.tsv
    for line, (id1, id2) in read_table(
        dev_ids_path,
        task=task,
        role="the GLUE list of MRPC dev id pairs",
        columns=("#1 ID", "#2 ID"),
        header=False,
    ):
        dev_ids.setdefault((id1, id2), line)

    source = folder / "original" / "msr_paraphrase_train.txt"
    train, moved = [], set()
    for row, example in _MRPC.records(source, task, "the original Microsoft MRPC train file"):
        pair = (row[1], row[2])
        if pair in dev_ids:
            moved.add(pair)
        else:
            train.append(example)
    missing = dev_ids.keys() - moved
    if missing:
        line, pair = min((dev_ids[p], p) for p in missing)
        raise DataFormatError(
            dev_ids_path, line, f"an id pair present in {source.name}", show("\t".join(pair))
        )
    test = _MRPC.read(folder / "dev.tsv", task, "the MRPC dev split")
    return Splits(train, test, ["not_equivalent", "equivalent"])


# --------------------------------------------------------------------------- TinyNLP & others
# Emotion (dair-ai): `text;label_name` with header; ids in Hugging Face order. The official
# val.txt is NOT used: validation is the seeded slice of train.txt, as for every task here.
EMOTION_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
_EMOTION = class_table(
    ("text", "label_name"), "text", "label_name", names_to_ids(EMOTION_LABELS), delimiter=";"
)

# IMDb (aclImdb v1.0): gzipped `text<TAB>label` with header, no quoting; neg=0, pos=1. Rows
# are sorted by label (all neg first); HTML `<br />` tags are kept.
IMDB_LABELS = ["neg", "pos"]
_IMDB = class_table(("text", "label"), "text", "label", names_to_ids(IMDB_LABELS))


def _load_snips(folder: Path, task: str) -> Splits:
    """SNIPS intents (JointBERT layout): line i of ``seq.in`` and of ``label`` go together.

    Label names are the intents of ``intent_label.txt`` in file order, without JointBERT's
    ``UNK`` placeholder. The dev/ folder is not used.
    """
    label_path = folder / "intent_label.txt"
    names: list[str] = []
    for line, name in enumerate(
        read_lines(label_path, task=task, role="the list of intent names"), start=1
    ):
        if not name.strip() or name in names:
            raise DataFormatError(label_path, line, "a new, non-empty intent name", show(name))
        if name != "UNK":
            names.append(name)
    parse = class_label(names_to_ids(names), "intent")

    def load(split: str) -> list[Example]:
        text_path, intent_path = folder / split / "seq.in", folder / split / "label"
        texts = read_lines(text_path, task=task, role=f"the snips {split} utterances")
        intents = read_lines(intent_path, task=task, role=f"the snips {split} intents")
        if len(intents) != len(texts):
            n = min(len(texts), len(intents))
            got = "end of file" if len(intents) < len(texts) else show(intents[n])
            raise DataFormatError(
                intent_path,
                n + 1,
                f"one intent per line of {split}/seq.in ({len(texts)} lines)",
                got,
            )
        return [
            Example(
                nonempty_text(text, text_path, i, "seq.in"), None, parse(intent, intent_path, i)
            )
            for i, (text, intent) in enumerate(zip(texts, intents, strict=True), start=1)
        ]

    return Splits(load("train"), load("test"), names)


AG_NEWS_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def _unquote_csv_field(text: str) -> str:
    """Undo CSV quoting left in a field: ``"a ""b"" c"`` -> ``a "b" c``; other text unchanged."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return text


# train_subset_alps10k.tsv: `description<TAB>label name`, no header (one is skipped if present).
_AG_NEWS_TRAIN = class_table(
    ("sentence", "label"),
    "sentence",
    "label",
    names_to_ids(AG_NEWS_LABELS),
    header=None,
    clean=_unquote_csv_field,
)
# test.csv: quoted CSV `class_index,title,description`, no header, class_index 1..4.
_AG_NEWS_TEST = class_table(
    ("class_index", "title", "description"),
    "description",
    "class_index",
    {str(i + 1): i for i in range(4)},
    header=False,
    delimiter=",",
    quoted=True,
)


def _load_ag_news(folder: Path, task: str) -> Splits:
    """AG News: train = the 10k ALPS subset of the official train set, test = official test.

    * Text is the DESCRIPTION ONLY, in both splits: the train subset has no titles, so titles
      are dropped from ``test.csv`` too (Hugging Face's ``ag_news`` uses title + description).
    * ``train_subset_alps10k.tsv`` has no header and 10,001 rows (not 10,000 as its SOURCE.md
      says). 397 of its descriptions still carry the CSV quoting of the original file (wrapped
      in ``"``, inner ``"`` doubled); that is undone so the text matches ``test.csv``.
    * Labels: 0 World, 1 Sports, 2 Business, 3 Sci/Tech (= test.csv class_index - 1). The
      original escapes (``\\`` for a newline, `` #39;`` for ``'``) are kept, as in both files.
    """
    return Splits(
        _AG_NEWS_TRAIN.read(
            folder / "train_subset_alps10k.tsv", task, "the 10k AG News train subset"
        ),
        _AG_NEWS_TEST.read(folder / "test.csv", task, "the AG News test split"),
        list(AG_NEWS_LABELS),
    )


CYBERBULLYING_LABELS = [
    "age",
    "ethnicity",
    "gender",
    "not_cyberbullying",
    "other_cyberbullying",
    "religion",
]
_CYBERBULLYING = class_table(
    ("tweet_text", "cyberbullying_type"),
    "tweet_text",
    "cyberbullying_type",
    names_to_ids(CYBERBULLYING_LABELS),
    delimiter=",",
    quoted=True,
)


def _load_cyberbullying(folder: Path, task: str) -> Splits:
    """Cyberbullying tweets (Kaggle): quoted CSV ``tweet_text,cyberbullying_type`` (gzipped).

    There is no official split, so one is made here, the same in every run:

    1. exact duplicate rows (same text and label; 36 in the file) are dropped, keeping the
       first, so no example occurs in both train and test;
    2. per class, ``round(20 %)`` of the rows are drawn as test with
       ``numpy.random.default_rng(CYBERBULLYING_SPLIT_SEED)`` (1234, NOT the ``seed``
       argument); the rest is the "official" train split the validation slice is taken from.

    Texts that occur under two different labels (label noise of the original) are kept.
    Labels are the six class names in alphabetical order.
    """
    examples = _CYBERBULLYING.read(
        folder / "cyberbullying_tweets.csv.gz", task, "the Kaggle cyberbullying tweets"
    )
    examples = list(dict.fromkeys(examples))  # drop exact duplicates, keep first occurrences
    is_test = stratified_test_mask(
        [int(e.label) for e in examples], CYBERBULLYING_TEST_FRACTION, CYBERBULLYING_SPLIT_SEED
    )
    train = [e for e, t in zip(examples, is_test, strict=True) if not t]
    test = [e for e, t in zip(examples, is_test, strict=True) if t]
    return Splits(train, test, list(CYBERBULLYING_LABELS))


# --------------------------------------------------------------------------- registry
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("snips", "snips", "accuracy", "test", "7-class intent detection", _load_snips),
        TaskSpec(
            "emotion",
            "emotion",
            "accuracy",
            "test",
            "6-class emotion of tweets",
            _two_files("emotion", "train.txt", "test.txt", _EMOTION, EMOTION_LABELS),
        ),
        TaskSpec(
            "sst2",
            "SST-2",
            "accuracy",
            "dev",
            "binary sentiment (GLUE)",
            _two_files("SST-2", "train.tsv", "dev.tsv", _SST2, ["negative", "positive"]),
        ),
        TaskSpec(
            "cola",
            "CoLA",
            "mcc",
            "dev",
            "linguistic acceptability (GLUE)",
            _two_files("CoLA", "train.tsv", "dev.tsv", _COLA, ["unacceptable", "acceptable"]),
        ),
        TaskSpec("mrpc", "MRPC", "f1", "dev", "paraphrase detection (GLUE)", _load_mrpc),
        TaskSpec(
            "stsb",
            "STS-B",
            "spearman",
            "dev",
            "semantic similarity regression (GLUE)",
            _two_files("STS-B", "train.tsv", "dev.tsv", _STSB, None),
        ),
        TaskSpec(
            "rte",
            "RTE",
            "accuracy",
            "dev",
            "textual entailment (GLUE)",
            _two_files(
                "RTE", "train.tsv", "dev.tsv", _nli_table(names_to_ids(RTE_LABELS)), RTE_LABELS
            ),
        ),
        TaskSpec(
            "wnli",
            "WNLI",
            "accuracy",
            "dev",
            "Winograd NLI (GLUE)",
            _two_files("WNLI", "train.tsv", "dev.tsv", _nli_table(_BINARY), WNLI_LABELS),
        ),
        TaskSpec("ag_news", "ag_news", "accuracy", "test", "4-class news topic", _load_ag_news),
        TaskSpec(
            "imdb",
            "imdb",
            "accuracy",
            "test",
            "binary movie-review sentiment",
            _two_files("IMDb", "train.tsv.gz", "test.tsv.gz", _IMDB, IMDB_LABELS),
        ),
        TaskSpec(
            "cyberbullying",
            "cyberbullying",
            "accuracy",
            "test",
            "6-class cyberbullying type of tweets",
            _load_cyberbullying,
        ),
    ]
}


def _get_spec(name: str) -> TaskSpec:
    key = name.strip().lower().replace("-", "").replace("_", "")
    for spec in TASKS.values():
        if spec.name.replace("_", "") == key:
            return spec
    raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def load_task(
    name: str,
    data_dir: PathLike,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_limit: int | None = None,
) -> TaskData:
    """Load a registered task (see :data:`TASKS`) from ``data_dir/<task folder>``.

    ``name`` is case-insensitive and ignores ``-``/``_`` (``"SST-2"`` works). ``validation`` is
    the seeded slice of the official train split (:func:`split_train_validation`); with
    ``train_limit`` the train part is further cut to a seeded subset of that many examples
    (validation is unchanged). ``test`` never depends on ``seed``.
    """
    spec = _get_spec(name)
    splits = spec.load(Path(data_dir) / spec.folder, spec.name)
    return assemble(
        spec.name,
        splits,
        metric=spec.metric,
        test_split=spec.test_split,
        val_fraction=val_fraction,
        seed=seed,
        train_limit=train_limit,
    )


def task_texts(name: str, data_dir: PathLike) -> Iterator[str]:
    """Unlabelled texts (``text_a``, then ``text_b`` if any) of a task's TRAIN split.

    This is the whole official train split, the seed-dependent validation slice included; the
    test split is never read from (for cyberbullying: the fixed 80 % train part). Use it for
    pretraining or tokenizer training. The files are loaded (and validated) before returning.
    """
    spec = _get_spec(name)
    return _iter_texts(spec.load(Path(data_dir) / spec.folder, spec.name).train)


def _iter_texts(examples: Iterable[Example]) -> Iterator[str]:
    for example in examples:
        yield example.text_a
        if example.text_b is not None:
            yield example.text_b
