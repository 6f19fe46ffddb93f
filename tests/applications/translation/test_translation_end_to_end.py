"""Train a very small translator briefly, export it, and serve it as TF Serving would."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.translation import data
from applications.translation.attention_plot import plot_cross_attention
from applications.translation.config import PRESETS, TranslationConfig
from applications.translation.train import train
from tests.support.serving_checks import (
    classify_ops,
    saved_model_cli_run,
    serve_groups_in_session,
    serve_in_session,
    signature_names,
    warmup_and_readme_requests,
)
from tfformer import decoding
from tfformer.export import saved_model_ops

CONFIG = dataclasses.replace(
    TranslationConfig(**PRESETS["tiny"]), builtin_examples=1500, vocabulary_size=120,
    num_layers=1, d_model=32, num_heads=2, intermediate_dim=64, epochs=1, steps_per_epoch=40,
    batch_size=32, max_target_length=24, max_source_length=16, beam_size=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    result = train(CONFIG, workdir=str(root / "run"), export_dir=str(root / "export"), verbose=0,
                   examples=0)
    return {**result, "root": root}


def test_training_writes_checkpoints_logs_and_one_version(trained):
    root = trained["root"]
    assert (root / "run" / "checkpoints" / "best.weights.h5").exists()
    assert any((root / "run" / "logs").rglob("*tfevents*"))
    assert sorted(p.name for p in (root / "export").iterdir()) == ["1"]
    assert trained["history"]["loss"][0] > 0 and np.isfinite(trained["history"]["loss"][0])


def test_cached_decoding_equals_recomputing_the_prefix(trained):
    """Step by step with the KV cache, the logits equal a full pass over the prefix."""
    server, model = trained["server"], trained["model"]
    source_ids = server.source_ids(tf.constant(["twenty-one", "on the third of May", "one cat"]))
    length = 10
    tokens = np.random.default_rng(0).integers(4, 120, size=(3, length)).astype("int32")
    tokens[:, 0] = data.BOS_ID
    state, shared = model.initial_state(source_ids, length)
    cached = []
    for index in range(length):
        logits, state = model.decode_step(tf.constant(tokens[:, index]), state, index, shared)
        cached.append(np.asarray(logits))
    full = np.asarray(model({"source_ids": source_ids, "target_ids": tokens}))
    error = np.max(np.abs(np.stack(cached, axis=1) - full))
    assert error <= 1e-4, error
    # And greedy decoding over the cache picks, at every step, the full pass's argmax.
    state, shared = model.initial_state(source_ids, length)
    decoded = decoding.greedy_search(model.decode_step, tf.fill([3], data.BOS_ID), state, length,
                                     data.EOS_ID, shared=shared).numpy()
    full = np.array(model({"source_ids": source_ids, "target_ids": decoded[:, :-1]}))
    full[..., data.PAD_ID] = -np.inf  # decoding never emits padding
    for row, sequence in enumerate(decoded):
        for step in range(length - 1):  # the last step is forced to EOS
            if sequence[step + 1] == data.PAD_ID:
                break
            best = np.sort(full[row, step])[-2:]
            if best[1] - best[0] > 1e-4:  # not a near-tie
                assert sequence[step + 1] == np.argmax(full[row, step])


def test_beam_size_one_equals_greedy_on_the_model(trained):
    server, model = trained["server"], trained["model"]
    source_ids = server.source_ids(tf.constant(["seven hundred two", "one red apple"]))
    start = tf.fill([2], data.BOS_ID)
    state, shared = model.initial_state(source_ids, 10)
    greedy = decoding.greedy_search(model.decode_step, start, state, 10, data.EOS_ID,
                                    shared=shared)
    beam, _ = decoding.beam_search(model.decode_step, start, state, 10, data.EOS_ID,
                                   beam_size=1, shared=shared)
    np.testing.assert_array_equal(greedy, beam)


def test_growing_and_preallocated_caches_decode_alike(trained):
    """The default cache grows a position a step (graph mode); `static_cache=True` is the
    preallocated one XLA compiles. Traced, both find the same sequences."""
    server, model = trained["server"], trained["model"]
    source_ids = server.source_ids(tf.constant(["twenty-one", "one big cat", "on May third"]))
    start = tf.fill([3], data.BOS_ID)

    def search(static_cache, beam_size):
        state, shared = model.initial_state(source_ids, 12, static_cache=static_cache)
        if beam_size == 1:
            return decoding.greedy_search(model.decode_step, start, state, 12, data.EOS_ID,
                                          shared=shared)
        return decoding.beam_search(model.decode_step, start, state, 12, data.EOS_ID,
                                    beam_size=beam_size, shared=shared)[0]

    for beam_size in (1, 4):
        growing = tf.function(lambda: search(False, beam_size))()
        np.testing.assert_array_equal(growing, tf.function(lambda: search(True, beam_size))())
    compiled = tf.function(lambda: search(True, 1), jit_compile=True)()
    np.testing.assert_array_equal(compiled, tf.function(lambda: search(False, 1))())


SENTENCES = ["twenty-one", "one big cat", "on March third"]


def _every_signature_requests():
    requests = [(name, {"text": SENTENCES}) for name in ("serving_default", "greedy", "attention")]
    odd = ["", "one cat", b"\xff\xfe bad utf-8", "one " * 500]
    return requests + [("serving_default", {"text": odd}), ("greedy", {"text": []})]


@pytest.fixture(scope="module")
def session_answers(trained):
    """The answers to the requests of the two tests below, through TF Serving's session path
    (checked against `tf.saved_model.load`'s) in one fresh process that loads the export once."""
    path = trained["export_path"]
    assert {name for name, _ in _every_signature_requests()} == signature_names(path)
    warmup, rest = warmup_and_readme_requests(path, "translation")
    return {"requests": (warmup, rest), **serve_groups_in_session(path, {
        "every signature": _every_signature_requests(), "warm-up and README": warmup + rest})}


def test_every_signature_answers_through_tf_servings_loader(trained, session_answers):
    """TF Serving's path (MetaGraph into a session, restore op, init op, `Session.run`) answers
    every signature as `tf.saved_model.load` does, and as the trained server did."""
    sentences = SENTENCES
    beam, greedy, attention, odd, empty = session_answers["every signature"]
    server = trained["server"]
    expected = server.serve(tf.constant(sentences))
    assert beam["translation"].tolist() == expected["translation"].numpy().tolist()
    np.testing.assert_allclose(beam["score"], expected["score"], atol=1e-4)
    assert greedy["translation"].tolist() == (
        server.serve_greedy(tf.constant(sentences))["translation"].numpy().tolist())
    assert np.all(greedy["score"] < 0)  # a real log-probability, length-normalised like beam's
    assert attention["translation"].tolist() == beam["translation"].tolist()
    assert attention["cross_attention"].shape[:3] == (3, CONFIG.num_layers, CONFIG.num_heads)
    # Bad input: an empty string translates to "", bad UTF-8 and overlong input still answer.
    assert odd["translation"].shape == (4,) and odd["translation"][0] == b""
    assert all(odd["translation"][1:])
    assert empty["translation"].shape == (0,) and empty["score"].shape == (0,)


def test_saved_model_cli_runs_the_export(trained):
    output = saved_model_cli_run(trained["export_path"], "serving_default",
                                 input_exprs='text=["twenty-one"]')
    expected = trained["server"].serve(tf.constant(["twenty-one"]))["translation"].numpy()[0]
    assert "Result for output key translation" in output
    assert repr(expected) in output


def test_warmup_and_readme_rest_requests_answer_through_the_session_path(session_answers):
    """The export's warm-up records reach every signature; README's REST bodies, turned into
    tensors as TF Serving's REST API does, name real inputs with the right dtypes."""
    warmup, rest = session_answers["requests"]
    assert all("error" not in answer for answer in session_answers["warm-up and README"])
    assert len(rest) == 2
    assert {len(inputs["text"]) for _, inputs in warmup} == {1, 8}


def test_export_uses_only_tensorflow_and_tf_text_ops(trained):
    ops = saved_model_ops(trained["export_path"])
    classified = classify_ops(ops)
    assert classified["unknown"] == []
    assert "SentencepieceOp" in classified["tf_text"]


def test_cli_translate_and_evaluate(trained, tmp_path, capsys):
    export_dir = str(trained["root"] / "export")
    assert cli.main(["translate", export_dir, "twenty-one", "one cat", "--greedy"]) == 0
    assert capsys.readouterr().out.count("\n") == 2  # one line per sentence
    output = tmp_path / "hypotheses.txt"
    overrides = [f"builtin_examples={CONFIG.builtin_examples}"]
    assert cli.main(["evaluate", "translation", "--model", export_dir, "--output", str(output),
                     *sum([["--set", o] for o in overrides], [])]) == 0
    printed = capsys.readouterr().out  # the built-in task is scored by chrF and exact match
    assert "chrF" in printed and "exact" in printed and "sacreBLEU" not in printed
    assert len(output.read_text().splitlines()) == len(
        data.load_corpus(None, CONFIG)["test"])


def test_cli_names_a_bad_override(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "translation", "--set", "depth=3"])
    assert exit_info.value.code == 2
    assert "unknown config key 'depth'" in capsys.readouterr().err


def test_cli_translate_reads_a_file_or_stdin(trained, tmp_path, monkeypatch, capsys):
    import io

    export_dir = str(trained["root"] / "export")
    sentences = tmp_path / "in.txt"
    sentences.write_text("one cat\ntwenty\nseven dogs\n", encoding="utf-8")
    assert cli.main(["translate", export_dir, "--file", str(sentences)]) == 0
    from_file = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("one cat\ntwenty\nseven dogs\n"))
    assert cli.main(["translate", export_dir]) == 0
    assert capsys.readouterr().out == from_file and from_file.count("\n") == 3


def test_cli_names_the_kind_of_export_it_was_given(trained, capsys, tmp_path):
    export_dir = str(trained["root"] / "export")
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF")  # a file that exists: files are checked before the export
    with pytest.raises(SystemExit):
        cli.main(["transcribe", export_dir, str(clip)])
    assert "is a translation export: serve it with `tfformer translate`" in (
        capsys.readouterr().err)


def test_cli_translate_names_a_missing_export(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["translate", str(tmp_path / "nothing"), "hello"])
    assert "no SavedModel" in capsys.readouterr().err


def test_attention_signature_returns_the_weights_its_beam_search_used(trained, tmp_path):
    loaded = tf.saved_model.load(trained["export_path"])
    text = tf.constant(["seven hundred two", "twenty-one red apples", ""])
    outputs = loaded.signatures["attention"](text=text)
    plain = loaded.signatures["serving_default"](text=text)
    np.testing.assert_array_equal(outputs["translation"], plain["translation"])
    weights = outputs["cross_attention"].numpy()  # (B, L, N, T, S)
    target_tokens = outputs["target_tokens"].numpy()
    server, model = trained["server"], trained["model"]
    source_ids = server.source_ids(text)
    ids = tf.constant(server.target_vocabulary.sentencepiece.string_to_id(
        tf.where(target_tokens == b"</s>", "</s>", target_tokens)).numpy())
    # The same weights from one teacher-forced pass over the produced translation.
    memory, source_mask = model.encode(source_ids)
    prefix = tf.concat([tf.fill([3, 1], data.BOS_ID), ids[:, :-1]], axis=1)
    _, scores = model.decoder(model.target_embedding(prefix), memory,
                              targets_mask=tf.not_equal(prefix, 0), memory_mask=source_mask,
                              return_attention_scores=True)
    source_length = tf.reduce_sum(tf.cast(source_mask, tf.int32), axis=1).numpy()
    for example in range(2):
        rows = int(np.sum(target_tokens[example] != b""))
        assert rows >= 2 and target_tokens[example][rows - 1] == b"</s>"
        used = weights[example, :, :, :rows, :source_length[example]]
        np.testing.assert_allclose(used.sum(-1), 1.0, atol=1e-5)
        recomputed = np.stack([s["cross"][example, :, :rows, :source_length[example]]
                               for s in scores])
        np.testing.assert_allclose(used, recomputed, atol=1e-5)
        drawn = plot_cross_attention(outputs, str(tmp_path / f"{example}.png"),
                                     example=example, layer=0)
        np.testing.assert_array_equal(drawn, weights[example, 0, :, :rows,
                                                     :source_length[example]])
    assert not outputs["target_tokens"].numpy()[2].any()  # nothing to translate


def test_cli_plots_cross_attention(trained, tmp_path, capsys):
    output = str(tmp_path / "attention.png")
    assert cli.main(["plot", "attention", "translation", "seven hundred two", "--model",
                     str(trained["root"] / "export"), "--head", "0", "--output", output]) == 0
    translation = capsys.readouterr().out.splitlines()[0]
    expected = trained["server"].serve(tf.constant(["seven hundred two"]))["translation"]
    assert translation == expected.numpy()[0].decode()
    from PIL import Image
    assert Image.open(output).size[0] > 100


def test_load_and_export_a_run_again(trained, tmp_path, monkeypatch, capsys):
    """`load(workdir)` rebuilds the trained translator (README's example runs as a doctest);
    `tfformer export` writes the next version, answering as the first."""
    import doctest
    import os
    import re

    from tests.support.serving_checks import README

    monkeypatch.chdir(tmp_path)
    os.makedirs("runs")
    os.symlink(trained["root"] / "run", "runs/translation")
    example = re.search(r"```pycon\n(.*?)```", open(README).read(), re.DOTALL)[1]
    test = doctest.DocTestParser().get_doctest(example, {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    from applications.translation import load

    translator = load("runs/translation")
    sentences = ["twenty-one", "one big cat", "on May third"]
    expected = [t.decode() for t in trained["server"].serve(tf.constant(sentences))[
        "translation"].numpy()]
    assert translator.translate(sentences) == expected
    assert cli.main(["export", "translation", "--workdir", "runs/translation",
                     "--export-dir", "exports"]) == 0
    assert "checkpoints/best.weights.h5 to exports/1" in capsys.readouterr().out
    served = tf.saved_model.load("exports/1").signatures["serving_default"]
    assert [t.decode() for t in served(text=tf.constant(sentences))["translation"].numpy()] == (
        expected)
    with pytest.raises(SystemExit):
        cli.main(["export", "translation", "--workdir", str(tmp_path / "nothing")])
    assert "holds no training run: config.json is missing" in capsys.readouterr().err


def test_an_int8_translator_decodes_with_the_cache_and_serves_as_it_translates(trained, tmp_path):
    """`load(..., quantize="int8")` (what `tfformer export --quantize int8` and
    `--set quantize=int8` run): every projection and the tied embedding hold int8 kernels,
    cached decoding still equals a full pass, and the export answers through TF Serving's
    loader as the quantized translator translates (its signatures are the float export's,
    traced by the same code)."""
    from applications.translation import load

    translator = load(str(trained["root"] / "run"), quantize="int8")
    model = translator.model
    modes = {type(layer).__name__: layer.quantization_mode for layer in model._flatten_layers()
             if hasattr(layer, "quantization_mode") and layer.weights
             and len(list(layer._flatten_layers())) == 1
             and type(layer).__name__ in ("FlatEinsumDense", "Dense", "ReversibleEmbedding")}
    assert modes == dict.fromkeys(("FlatEinsumDense", "Dense", "ReversibleEmbedding"), "int8")
    source_ids = translator.server.source_ids(tf.constant(["twenty-one", "on the third of May"]))
    tokens = np.random.default_rng(0).integers(4, 120, size=(2, 8)).astype("int32")
    tokens[:, 0] = data.BOS_ID
    state, shared = model.initial_state(source_ids, 8)
    cached = []
    for index in range(8):
        logits, state = model.decode_step(tf.constant(tokens[:, index]), state, index, shared)
        cached.append(np.asarray(logits))
    full = np.asarray(model({"source_ids": source_ids, "target_ids": tokens}))
    assert np.max(np.abs(np.stack(cached, axis=1) - full)) <= 1e-3
    float_full = np.asarray(trained["model"]({"source_ids": source_ids, "target_ids": tokens}))
    assert 0 < np.max(np.abs(full - float_full)) < 0.1 * np.max(np.abs(float_full))

    sentences = ["twenty-one", "one big cat", "on March third"]
    path = translator.export(str(tmp_path / "exports"))
    (beam,) = serve_in_session(path, [("serving_default", {"text": sentences})])
    assert [t.decode() for t in beam["translation"]] == translator.translate(sentences)
    variables = sum(f.stat().st_size for f in (tmp_path / "exports" / "1").rglob("variables*")
                    if f.is_file())
    float_variables = sum(f.stat().st_size for f in
                          (trained["root"] / "export" / "1").rglob("variables*") if f.is_file())
    assert variables < 0.5 * float_variables, (variables, float_variables)


def test_other_applications_commands_name_this_export_and_run(trained, capsys, tmp_path):
    from tests.support.wrong_kind import assert_other_applications_name_it

    assert_other_applications_name_it(trained["root"], "translation", capsys, tmp_path)
