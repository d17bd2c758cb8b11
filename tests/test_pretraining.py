"""MLM/NSP batches, and the pretraining command: resume after SIGKILL, exact resume, mirrored."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import subprocess_env, tiny_corpus
from tflm_embbert.data.corpus import read_paragraphs
from tflm_embbert.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID
from tflm_embbert.training.pretraining_data import MLMBatcher, split_held_out


def _batcher(seq_len=32, batch_size=64, seed=0):
    stream = np.arange(5, 5 + 5000) % 115 + 5  # every token >= 5: all are maskable text
    return MLMBatcher(stream.astype(np.int16), seq_len, batch_size, 120, seed), stream


def test_batch_is_a_function_of_seed_and_step():
    a, _ = _batcher()
    b, _ = _batcher()
    for x, y in zip(a.batch(7), b.batch(7), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.batch(7)[0], a.batch(8)[0])
    c, _ = _batcher(seed=1)
    assert not np.array_equal(a.batch(7)[0], c.batch(7)[0])


def test_example_layout_and_masking():
    batcher, stream = _batcher(seq_len=40, batch_size=400)
    ids, segments, positions, labels, weights, nsp = batcher.batch(3)
    assert ids.shape == (400, 40) and positions.shape == (400, 6)
    assert (ids[:, 0] == CLS_ID).all()
    masked_total = real_total = 0
    for row in range(400):
        seps = np.flatnonzero(ids[row] == SEP_ID)
        assert len(seps) == 2
        first, second = seps
        assert (segments[row, : first + 1] == 1).all()
        assert (segments[row, first + 1 : second + 1] == 2).all()
        assert (ids[row, second + 1 :] == PAD_ID).all() and (segments[row, second + 1 :] == 0).all()
        slots = positions[row, weights[row] > 0]
        assert len(set(slots)) == len(slots)
        assert np.isin(slots, np.flatnonzero(ids[row] != PAD_ID)).all()
        assert not np.isin(slots, [0, first, second]).any()  # specials never masked
        masked_total += len(slots)
        real_total += second - 2
    assert 0.13 < masked_total / real_total < 0.17
    chosen = weights > 0
    replaced = np.take_along_axis(ids, positions, axis=1)[chosen]
    original = labels[chosen]
    share_mask = np.mean(replaced == MASK_ID)
    share_kept = np.mean(replaced == original)
    assert 0.75 < share_mask < 0.85 and 0.07 < share_kept < 0.16
    assert 0.4 < nsp.mean() < 0.6


def test_is_next_pairs_follow_in_the_stream():
    batcher, stream = _batcher(seq_len=24, batch_size=200)
    ids, _, positions, labels, weights, nsp = batcher.batch(0)
    restored = ids.copy()
    np.put_along_axis(restored, positions, np.where(weights > 0, labels, restored[
        np.arange(len(ids))[:, None], positions]), axis=1)
    for row in np.flatnonzero(nsp == 1):
        first, second = np.flatnonzero(restored[row] == SEP_ID)
        text = np.concatenate([restored[row, 1:first], restored[row, first + 1 : second]])
        start = np.flatnonzero(stream == text[0])
        assert any(np.array_equal(stream[s : s + len(text)], text) for s in start)


def test_held_out_blocks_are_spread_and_disjoint():
    stream = np.arange(10_000)
    train, held = split_held_out(stream, block=10, every=10)
    assert len(train) + len(held) == 10_000
    assert len(np.intersect1d(train, held)) == 0
    assert held.min() < 100 and held.max() > 9_800  # from the start and the end of the stream


def test_read_paragraphs_splits_documents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("=== doc one ===\nfirst line\nwrapped here\n\nsecond para\n=== two ===\nlast\n")
    assert list(read_paragraphs(path)) == ["first line wrapped here", "second para", "last"]


# ----------------------------------------------------------------------- the command itself
TINY = '{"hidden_dim":16,"embedding_dim":8,"num_layers":1,"kernel_size":4,' \
       '"max_sequence_length":32,"dropout":0.0}'


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(tiny_corpus(600)))
    return path


def _command(out, tokenizer_dir, corpus, total_steps, *extra):
    return [
        sys.executable, "-m", "tflm_embbert.training.pretrain", "--out", str(out),
        "--tokenizer", str(tokenizer_dir), "--corpus", str(corpus), "--task_texts=",
        "--config_overrides", TINY, "--seq_len", "16", "--batch_size", "8",
        "--total_steps", str(total_steps), "--steps_per_checkpoint", "5", "--warmup_steps", "0",
        "--validation_steps", "1", "--held_out_block", "16", "--held_out_every", "10",
        "--progress", "0", *extra,
    ]


def test_resume_after_sigkill(tmp_path, tiny_tokenizer_dir, corpus_file):
    out = tmp_path / "run"
    progress = out / "checkpoints" / "progress.json"
    proc = subprocess.Popen(
        _command(out, tiny_tokenizer_dir, corpus_file, 100_000),
        env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if progress.exists() and json.loads(progress.read_text())["step"] >= 10:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step >= 10 within 120 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = json.loads(progress.read_text())["step"]
    assert saved % 5 == 0
    done = subprocess.run(
        _command(out, tiny_tokenizer_dir, corpus_file, saved + 10),
        env=subprocess_env(), capture_output=True, text=True, check=True,
    )
    assert f"at step {saved}" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == saved + 10
    assert summary["tokens_seen"] == (saved + 10) * 8 * 16


def test_resumed_run_matches_uninterrupted_run(tmp_path, tiny_tokenizer_dir, corpus_file):
    """Batches depend on the step only, so 5 steps + resume to 10 gives the 10-step weights."""
    env = {**subprocess_env(), "TF_DETERMINISTIC_OPS": "1"}
    straight, split = tmp_path / "straight", tmp_path / "split"
    subprocess.run(_command(straight, tiny_tokenizer_dir, corpus_file, 10, "--export_to",
                            str(tmp_path / "a")), env=env, check=True, capture_output=True)
    subprocess.run(_command(split, tiny_tokenizer_dir, corpus_file, 5), env=env, check=True,
                   capture_output=True)
    subprocess.run(_command(split, tiny_tokenizer_dir, corpus_file, 10, "--export_to",
                            str(tmp_path / "b")), env=env, check=True, capture_output=True)
    from keras_models.models import load_backbone

    a, _ = load_backbone(tmp_path / "a")
    b, _ = load_backbone(tmp_path / "b")
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "b" / "vocab.txt").exists()
    assert (tmp_path / "b" / "pretrain_summary.json").exists()


def test_mirrored_strategy_on_two_cpu_devices(tmp_path, tiny_tokenizer_dir, corpus_file):
    done = subprocess.run(
        _command(tmp_path / "run", tiny_tokenizer_dir, corpus_file, 5, "--strategy", "mirrored",
                 "--cpu_devices", "2"),
        env=subprocess_env(), capture_output=True, text=True, check=True,
    )
    assert "strategy mirrored: 2 replica(s)" in done.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 5


@pytest.mark.parametrize("source", ["run", "backbone"])
def test_new_phase_starts_from_an_earlier_run(tmp_path, tiny_tokenizer_dir, corpus_file, source):
    """--init_backbone: a run folder gives the whole pretrainer (heads too), a backbone folder
    the backbone layers; a second phase at another --seq_len starts from those weights."""
    env = subprocess_env()
    first = _command(tmp_path / "a", tiny_tokenizer_dir, corpus_file, 5)
    subprocess.run(first + ["--export_to", str(tmp_path / "a_backbone")], env=env, check=True,
                   capture_output=True)
    init = tmp_path / ("a" if source == "run" else "a_backbone")
    second = _command(tmp_path / "b", tiny_tokenizer_dir, corpus_file, 0)
    second[second.index("--seq_len") + 1] = "32"
    done = subprocess.run(second + ["--init_backbone", str(init), "--export_to",
                                    str(tmp_path / "b_backbone")],
                          env=env, check=True, capture_output=True, text=True)
    expected = "backbone + heads" if source == "run" else "backbone layers"
    assert "initialised" in done.stdout and expected in done.stdout
    # a new phase, not a resumed run: it starts at step 0 (the first run's optimizer stays behind)
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["steps"] == 0
    from keras_models.models import load_backbone

    a, _ = load_backbone(tmp_path / "a_backbone")
    b, _ = load_backbone(tmp_path / "b_backbone")
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
