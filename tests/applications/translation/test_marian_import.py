"""`tfformer import translation` of a Marian directory, then `tfformer export`: the export
answers through TF Serving's session path, in a fresh process, with exactly the strings that
transformers' `generate` and `MarianTokenizer.batch_decode` produced
(`tests/fixtures/pretrained/make_marian.py`), greedy and beam; bad directories are named."""

import dataclasses
import json
import os
import pathlib
import pickle
import shutil

import pytest

from applications import cli
from tests.support.serving_checks import serve_every_signature

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pretrained"


def _reference(name):
    return json.loads((FIXTURES / name / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=["marian_shared", "marian_separate"])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    run, export = str(root / "run"), str(root / "export")
    assert cli.main(["import", "translation", "--from", str(FIXTURES / request.param),
                     "--workdir", run]) == 0
    assert cli.main(["export", "translation", "--workdir", run, "--export-dir", export]) == 0
    return {"name": request.param, "run": run, "path": os.path.join(export, "1")}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """marian_shared imported, not exported: where fine-tuning starts (one fixture is enough
    to train; both are served above)."""
    run = str(tmp_path_factory.mktemp("imported") / "run")
    assert cli.main(["import", "translation", "--from", str(FIXTURES / "marian_shared"),
                     "--workdir", run]) == 0
    return run


def test_served_translations_equal_generate_through_tf_servings_loader(exported):
    reference = _reference(exported["name"])
    sentences = reference["sentences"]
    beam, greedy, attention = serve_every_signature(exported["path"], [
        (name, {"text": sentences}) for name in ("serving_default", "greedy", "attention")])
    assert [t.decode() for t in greedy["translation"]] == reference["greedy"]
    # Beam search keeps finished hypotheses in their beams and ranks them with GNMT's length
    # penalty, where generate keeps a pool of finished ones ranked by log-probability over
    # length: the same outputs on these fixtures, not by construction (see README).
    assert [t.decode() for t in beam["translation"]] == reference["beam"]
    assert attention["translation"].tolist() == beam["translation"].tolist()
    # The source ids the export used are MarianTokenizer's (as pieces: "</s>" last).
    vocabulary = json.loads((FIXTURES / exported["name"] / "vocab.json").read_text("utf-8"))
    piece = {index: text for text, index in vocabulary.items()}
    for row, ids in zip(attention["source_tokens"].tolist(), reference["token_ids"]):
        expected = [piece[i] for i in ids[:-1]] + ["</s>"]
        assert [t.decode() for t in row if t] == expected


def test_translate_command_reads_the_export(exported, capsys):
    reference = _reference(exported["name"])
    export_dir = os.path.dirname(exported["path"])
    assert cli.main(["translate", export_dir, *reference["sentences"][:2], "--greedy"]) == 0
    assert capsys.readouterr().out.splitlines() == reference["greedy"][:2]


def _import_error(source, workdir, capsys):
    before = sorted(os.listdir(workdir)) if os.path.exists(workdir) else None
    with pytest.raises(SystemExit) as stop:
        cli.main(["import", "translation", "--from", str(source), "--workdir", str(workdir)])
    assert stop.value.code == 2
    after = sorted(os.listdir(workdir)) if os.path.exists(workdir) else None
    assert after == before  # nothing half-written, nothing removed
    assert not os.path.exists(f"{workdir}.importing")
    return capsys.readouterr().err


def _copy(tmp_path, name="marian_shared"):
    target = tmp_path / f"copy_{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIXTURES / name, target)
    return target


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), **changes}))


def test_bad_directories_are_named_and_leave_no_run(tmp_path, capsys):
    run = tmp_path / "run"

    missing = _copy(tmp_path)
    (missing / "vocab.json").unlink()
    assert f"{missing} has no vocab.json" in _import_error(missing, run, capsys)

    other = _copy(tmp_path)
    _edit_json(other / "config.json", model_type="bert")
    assert "describes a 'bert' model, not a Marian one" in _import_error(other, run, capsys)

    wider = _copy(tmp_path)
    _edit_json(wider / "config.json", d_model=32)
    assert ("model.safetensors's model.shared.weight has shape (88, 16), which does not fit"
            in _import_error(wider, run, capsys))

    larger = _copy(tmp_path)
    vocabulary = json.loads((larger / "vocab.json").read_text("utf-8"))
    _edit_json(larger / "vocab.json", extra_piece=max(vocabulary.values()) + 1)
    assert ("vocab.json has ids up to 88, but config.json's vocab_size is 88: the vocabulary "
            "does not match the embedding") in _import_error(larger, run, capsys)

    (run / "old").mkdir(parents=True)
    assert f"{run} is not empty" in _import_error(FIXTURES / "marian_shared", run, capsys)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_bin_file_that_would_run_a_command_is_refused(tmp_path, capsys):
    import zipfile

    unsafe = _copy(tmp_path, "marian_separate")
    marker = tmp_path / "ran"
    with zipfile.ZipFile(unsafe / "pytorch_model.bin", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_RunsACommand(marker), protocol=2))
    error = _import_error(unsafe, tmp_path / "run", capsys)
    assert "pytorch_model.bin is refused" in error and "asks for" in error
    assert not marker.exists()


def _parallel_text(directory, reference, copies):
    directory.mkdir()
    pairs = list(zip(reference["sentences"], reference["targets"])) * copies
    for suffix, side in (("en", 0), ("de", 1)):
        (directory / f"train.{suffix}").write_text(
            "".join(pair[side] + "\n" for pair in pairs), encoding="utf-8")
    return str(directory)


def test_fine_tuning_starts_from_the_imported_weights_and_tokenizer(imported, tmp_path, capsys):
    """`train --init-from` with a learning rate of ~0 exports what was imported: the same
    greedy translations, so the weights, tokenizer and decoding settings all carried over."""
    reference = _reference("marian_shared")
    data_dir = _parallel_text(tmp_path / "data", reference, copies=4)
    export_dir = str(tmp_path / "export")
    assert cli.main(["train", "translation", "--init-from", imported, "--data", data_dir,
                     "--workdir", str(tmp_path / "run"), "--export-dir", export_dir,
                     "--set", "epochs=1", "--set", "steps_per_epoch=2", "--set", "batch_size=4",
                     "--set", "learning_rate_scale=1e-12"]) == 0
    out = capsys.readouterr().out
    assert f"starting from {os.path.join(imported, 'checkpoints', 'last.weights.h5')}" in out
    assert cli.main(["translate", export_dir, *reference["sentences"], "--greedy"]) == 0
    assert capsys.readouterr().out.splitlines() == reference["greedy"]


# Three epochs of 16 steps (about 45 s beside other tests): the test above already trains
# from the import in the default run.
@pytest.mark.slow
def test_fine_tuning_lowers_the_loss(imported, tmp_path):
    from applications.common.restore import read_run
    from applications.translation.config import TranslationConfig
    from applications.translation.train import train

    reference = _reference("marian_shared")
    data_dir = _parallel_text(tmp_path / "data", reference, copies=8)
    imported_config, _ = read_run(imported, TranslationConfig)
    # An epoch of 16 batches is one length-sorted pool (`data.POOL_BATCHES`): every epoch
    # has the same mix of lengths, so their losses compare.
    config = dataclasses.replace(imported_config, epochs=3, steps_per_epoch=16, batch_size=8,
                                 warmup_steps=4, learning_rate_scale=0.5)
    result = train(config, data_dir, workdir=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "export"), verbose=0, examples=0,
                   init_from=imported)
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0] * 0.9, losses


def test_fine_tuning_keeps_the_imported_architecture(imported, tmp_path, capsys):
    """A size or a changed architecture field is refused, named, before anything runs."""
    data_dir = _parallel_text(tmp_path / "data", _reference("marian_shared"), copies=8)
    for flags, message in ((["--preset", "small"], "--preset sets a size"),
                           (["--set", "d_model=32"], "d_model (is 16) can't change")):
        with pytest.raises(SystemExit):
            cli.main(["train", "translation", "--init-from", imported, "--data",
                      data_dir, "--workdir", str(tmp_path / "other"), *flags])
        assert message in capsys.readouterr().err
        assert not (tmp_path / "other").exists()


def test_a_marian_tokenizer_without_a_run_to_start_from_is_refused_before_anything(tmp_path,
                                                                                   capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "translation", "--set", "tokenizer=marian", "--workdir",
                  str(tmp_path / "run")])
    assert "fine-tune it with `tfformer train translation --init-from RUN`" in (
        capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
