"""The pretraining run behind the `pretrain` command (tflm_embbert.training.pretrain, which
parses the flags and imports this module, and so TensorFlow, only then): builds or resumes the
MLM + NSP pretrainer, trains it checkpoint by checkpoint, and exports the backbone."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from absl import app

from keras_models.backend import keras, tf
from keras_models.models import (
    build_pretrainer,
    load_backbone,
    save_backbone,
    transfer_backbone_weights,
)
from keras_models.presets import get_config
from tflm_embbert.common import paths
from tflm_embbert.common.files import publish, staging_dir, write_text_atomic
from tflm_embbert.data import corpus
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.training.pretraining_data import (
    MLMBatcher,
    build_token_stream,
    load_or_build_stream,
    split_held_out,
)
from tflm_embbert.training.schedules import adamw


def make_strategy(name: str, cpu_devices: int = 0) -> tf.distribute.Strategy:
    if cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _train_seconds(progress_file: Path) -> float:
    """Training seconds recorded at the last checkpoint (0 before the first one)."""
    if not progress_file.exists():
        return 0.0
    return json.loads(progress_file.read_text())["train_seconds"]


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer at every epoch end (= checkpoint interval) and adds run facts to
    the logs (global step, tokens seen, wall time) so CSVLogger records them."""

    def __init__(self, manager, tokens_per_step, max_minutes, start_seconds):
        super().__init__()
        self.manager = manager
        self.tokens_per_step = tokens_per_step
        self.max_minutes = max_minutes
        self.start_seconds = start_seconds  # seconds spent by earlier (resumed) runs
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        seconds = self.start_seconds + time.time() - self.started
        if logs is not None:
            logs.update(step=step, tokens_seen=step * self.tokens_per_step, train_seconds=seconds)
        self.manager.save(checkpoint_number=step)
        # Atomic: a run killed here must still resume from a readable progress file.
        write_text_atomic(
            Path(self.manager.directory) / "progress.json",
            json.dumps({"step": step, "train_seconds": seconds}),
        )
        if self.max_minutes and time.time() - self.started > 60 * self.max_minutes:
            print(f"time budget of {self.max_minutes} min spent: stopping at step {step}")
            self.model.stop_training = True


def initialise(model: keras.Model, config, source: Path) -> str:
    """Loads a new run's starting weights from a pretraining run folder (the whole pretrainer
    from its last checkpoint, heads included) or a backbone folder (backbone layers only; the
    MLM/NSP heads start fresh). Returns what was loaded, for the log."""
    run_checkpoints = source / "checkpoints"
    if run_checkpoints.is_dir():
        latest = tf.train.latest_checkpoint(str(run_checkpoints))
        if latest is None:
            raise app.UsageError(f"--init_backbone {source}: the run has no checkpoint yet")
        # Restored into an uncompiled twin, so that only the weights come across: a compiled
        # model tracks its optimizer, and the new run must start at step 0 with fresh moments.
        twin = keras.models.clone_model(model)
        tf.train.Checkpoint(model=twin).restore(
            latest
        ).expect_partial().assert_existing_objects_matched()
        model.set_weights(twin.get_weights())
        return f"the pretrainer (backbone + heads) at {Path(latest).name}"
    source_model, source_config = load_backbone(source)
    if source_config != config:
        raise app.UsageError(
            f"--init_backbone {source}: its config {source_config.to_dict()} differs from the "
            f"run's {config.to_dict()}"
        )
    return f"{len(transfer_backbone_weights(source_model, model))} backbone layers"


def pretrain(f, tokenizer: Tokenizer | None = None) -> dict:
    """One pretraining run as the flag values `f` (pretrain.FLAGS) ask (with `tokenizer`, the
    one --tokenizer names, if already loaded); its summary."""
    out = Path(f.out)
    tokenizer = tokenizer or Tokenizer.load(f.tokenizer)
    overrides = json.loads(f.config_overrides) if f.config_overrides else {}
    config = get_config(f.preset, **overrides)
    if config.vocabulary_size != tokenizer.vocab_size:
        config = config.replace(vocabulary_size=tokenizer.vocab_size)
    if f.seq_len > config.max_sequence_length:
        raise app.UsageError(
            f"--seq_len {f.seq_len} exceeds the preset's max_sequence_length "
            f"{config.max_sequence_length}"
        )
    if f.init_backbone and not Path(f.init_backbone).is_dir():
        raise app.UsageError(f"--init_backbone: {f.init_backbone} is not a folder")
    data_dir = Path(f.data_dir) if f.data_dir else paths.shared_data_dir()
    corpus_path = Path(f.corpus) if f.corpus else data_dir / "pretrain_corpus"
    if not (out / "token_stream.npy").is_file():
        corpus.corpus_files(corpus_path)  # a missing corpus: one line, before the run folder
    out.mkdir(parents=True, exist_ok=True)

    def build():
        print(f"tokenizing {corpus_path} + task texts {f.task_texts} ...", flush=True)
        return build_token_stream(
            tokenizer,
            corpus.corpus_texts(corpus_path, f.task_texts, data_dir),
            progress=lambda n: print(f"  {n:,} tokens", flush=True),
        )

    stream = load_or_build_stream(out / "token_stream.npy", build)
    train_stream, held_out = split_held_out(stream, f.held_out_block, f.held_out_every)
    print(f"token stream: {len(train_stream):,} train + {len(held_out):,} held-out tokens")

    batcher = MLMBatcher(train_stream, f.seq_len, f.batch_size, config.vocabulary_size, f.seed)
    # The held-out batches do not follow --seed (seed 0's were drawn with 1), so every phase and
    # every seed is scored on the same masked tokens and the logged figures compare across runs.
    val_batcher = MLMBatcher(held_out, f.seq_len, f.batch_size, config.vocabulary_size, 1)

    strategy = make_strategy(f.strategy, f.cpu_devices)
    print(f"strategy {f.strategy}: {strategy.num_replicas_in_sync} replica(s)", flush=True)
    with strategy.scope():
        keras.utils.set_random_seed(f.seed)
        model = build_pretrainer(config, f.seq_len, batcher.num_predictions)
        optimizer = adamw(
            f.learning_rate,
            f.weight_decay,
            f.warmup_steps,
            total_steps=f.total_steps,
            decay=f.decay,
        )
        model.compile(
            optimizer=optimizer,
            loss={
                "mlm": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            },
            weighted_metrics={
                "mlm": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                "nsp": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            },
        )
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        manager = tf.train.CheckpointManager(checkpoint, out / "checkpoints", max_to_keep=2)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        elif f.init_backbone:
            copied = initialise(model, config, Path(f.init_backbone))
            print(f"initialised {copied} from {f.init_backbone}", flush=True)
    step = int(optimizer.iterations.numpy())
    progress_file = out / "checkpoints" / "progress.json"
    spent = _train_seconds(progress_file)
    if step:
        print(f"resumed from {manager.latest_checkpoint} at step {step}", flush=True)
    interval = f.steps_per_checkpoint
    if step % interval:
        raise RuntimeError(
            f"checkpoint step {step} is not a multiple of --steps_per_checkpoint {interval}; "
            "resume with the interval the run started with"
        )
    tokens_per_step = f.batch_size * f.seq_len
    epochs = -(-f.total_steps // interval)
    if step < f.total_steps:
        model.fit(
            batcher.dataset(step, epochs * interval),
            initial_epoch=step // interval,
            epochs=epochs,
            steps_per_epoch=interval,
            validation_data=val_batcher.dataset(0, f.validation_steps),
            validation_steps=f.validation_steps,
            callbacks=[
                ResumableCheckpoint(manager, tokens_per_step, f.max_minutes, spent),
                keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
            ],
            verbose=f.progress,
        )
    step = int(optimizer.iterations.numpy())
    spent = _train_seconds(progress_file)
    summary = {
        "preset": f.preset,
        "config": config.to_dict(),
        "seq_len": f.seq_len,
        "batch_size": f.batch_size,
        "steps": step,
        "tokens_seen": step * tokens_per_step,
        "train_seconds": round(spent, 1),
        "tokens_per_second": round(step * tokens_per_step / spent, 1) if spent else None,
        "stream_tokens": int(len(train_stream)),
        "held_out_tokens": int(len(held_out)),
        "learning_rate": f.learning_rate,
        "warmup_steps": f.warmup_steps,
        "weight_decay": f.weight_decay,
        "decay": f.decay,
        "init_backbone": f.init_backbone,
        "strategy": f.strategy,
        "command": " ".join(sys.argv),
    }
    if (out / "log.csv").exists():
        last = (out / "log.csv").read_text().strip().splitlines()
        header, values = last[0].split(","), last[-1].split(",")
        summary["final_log"] = dict(zip(header, values, strict=False))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if f.export_to:
        tmp = staging_dir(f.export_to)
        save_backbone(model, config, tmp)
        tokenizer.save(tmp)
        for name in ("log.csv", "summary.json"):
            if (out / name).exists():  # a run that trained no step has no log
                shutil.copy(out / name, tmp / f"pretrain_{name}")
        publish(tmp, f.export_to)
        print(f"exported backbone to {f.export_to}")
    return summary
