"""Train a small recognizer briefly on DTMF clips, export it, and serve it as TF Serving would."""

import dataclasses
import itertools
import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.speech_recognition import builtin_data, serving
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.evaluate import wav_bytes
from applications.speech_recognition.model import build_recognizer
from applications.speech_recognition.train import train
from tests.support.serving_checks import (
    CARRY_STATE,
    call_in_fresh_process,
    classify_ops,
    saved_model_cli_run,
    serve_groups_in_session,
    serve_in_session,
    signature_names,
    warmup_and_readme_requests,
)
from tests.support.wav_files import ENCODINGS, encode
from tfformer.export import saved_model_ops


def _readme():
    return (pathlib.Path(__file__).resolve().parents[3] / "README.md").read_text()


CONFIG = dataclasses.replace(SpeechRecognitionConfig(**PRESETS["tiny"]), builtin_examples=2000,
                             num_layers=2, epochs=5, chunk_frames=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_recognition")
    result = train(CONFIG, workdir=str(root / "run"), export_dir=str(root / "export"),
                   verbose=0, examples=0)
    return {**result, "root": root}


@pytest.fixture(scope="module")
def session_answers(trained):
    """The answers to the requests of the tests below, through TF Serving's session path (and
    checked against `tf.saved_model.load`'s) in one fresh process, which loads the export
    once for them all."""
    path = trained["export_path"]
    return serve_groups_in_session(path, {
        "every signature": _every_signature_requests(),
        "stream": _stream_requests(trained["server"]),
        "encodings": _encoding_requests(),
        "warm-up and README": sum(_warmup_and_readme_requests(path), [])})


def _clips(count, seed):
    return builtin_data.generate_split(count, CONFIG.sample_rate, seed)


def test_training_learns_the_task(trained):
    # Five short epochs: far from the tiny preset's quality, far from chance too.
    assert trained["scores"]["cer"] < 50.0
    assert trained["history"]["loss"][-1] < trained["history"]["loss"][0] / 3


def _every_signature_requests():
    waves, _ = _clips(4, seed=50)
    batch = [wav_bytes(w, CONFIG.sample_rate) for w in waves]
    silent = wav_bytes(np.zeros(800, np.float32), CONFIG.sample_rate)
    empty = wav_bytes(np.zeros(0, np.float32), CONFIG.sample_rate)
    requests = [("serving_default", {"audio_bytes": batch}),
                ("waveform", {"waveform": waves[0][None].astype(np.float32),
                              "sample_rate": np.int32(CONFIG.sample_rate)}),
                ("serving_default", {"audio_bytes": [silent, empty, batch[0]]}),
                ("serving_default", {"audio_bytes": [b"ID3 this is an mp3, honestly"]}),
                ("serving_default", {"audio_bytes": []}),
                ("waveform", {"waveform": np.zeros((0, 800), np.float32),
                              "sample_rate": np.int32(CONFIG.sample_rate)}),
                ("waveform", {"waveform": np.full((1, 800), np.nan, np.float32),
                              "sample_rate": np.int32(CONFIG.sample_rate)}),
                ("waveform", {"waveform": waves[0][None].astype(np.float32),
                              "sample_rate": np.int32(0)}),
                ("stream_start", {"sample_rate": np.array([CONFIG.sample_rate], np.int32)}),
                ("stream_step", {"waveform": waves[0][None].astype(np.float32),
                                 "final": np.array([True])}, CARRY_STATE)]
    return requests


def test_every_signature_answers_through_tf_servings_loader(trained, session_answers):
    """TF Serving's path (MetaGraph into a session, restore op, init op, `Session.run`) answers
    every signature as `tf.saved_model.load` does, and as the trained server did."""
    waves, _ = _clips(4, seed=50)
    batch = [wav_bytes(w, CONFIG.sample_rate) for w in waves]
    requests = _every_signature_requests()
    assert {signature for signature, *_ in requests} == signature_names(trained["export_path"])
    (served, waveform, odd, bad, empty, empty_waveform, nan, rate_0, _,
     streamed) = session_answers["every signature"]
    assert streamed["transcript"].tolist() == waveform["transcript"].tolist()
    in_process = trained["server"].serve(tf.constant(batch))["transcript"].numpy()
    assert served["transcript"].tolist() == in_process.tolist()
    assert any(served["transcript"])
    assert waveform["transcript"].tolist() == in_process[:1].tolist()
    assert odd["transcript"].tolist() == [b"", b"", in_process[0]]
    assert bad["error"] == "InvalidArgumentError"
    assert "not a WAV file: it does not begin with a RIFF/WAVE header" in bad["message"]
    assert empty["transcript"].shape == empty_waveform["transcript"].shape == (0,)
    assert nan["error"] == "InvalidArgumentError" and "NaN or infinite" in nan["message"]
    assert "sample_rate must be a positive" in rate_0["message"]


STREAM_BOUNDS = [0, 1, 1, 334, 1334, 1413, 4000]  # then the clips' end


def _stream_requests(server):
    waves, _ = _clips(2, seed=59)
    samples = min(len(w) for w in waves)
    waves = np.stack([w[:samples] for w in waves]).astype(np.float32)
    rates = np.full([2], CONFIG.sample_rate, np.int32)
    bounds = [*STREAM_BOUNDS, samples]
    requests = [("stream_start", {"sample_rate": rates})]
    for begin, end in itertools.pairwise(bounds):
        requests.append(("stream_step", {"waveform": waves[:, begin:end],
                                         "final": np.full([2], end == samples)}, CARRY_STATE))
    requests.append(("waveform", {"waveform": waves, "sample_rate": np.int32(CONFIG.sample_rate)}))
    # Bad requests: each is refused with a message that names the problem.
    state = {name: value.numpy() for name, value in
             server.stream_start(tf.constant(rates)).items()}
    chunk = {"waveform": waves[:, :800], "final": np.array([False, False])}
    bad = [{**chunk, **state, "waveform": np.full((2, 800), np.nan, np.float32)},
           {**chunk, **state, "final": np.array([False])},
           {**chunk, **state, "state_features": state["state_features"][:, :5]},
           {**chunk, **state, "state_model": state["state_model"] + 1}]
    requests += [("stream_step", inputs) for inputs in bad]
    requests.append(("stream_start", {"sample_rate": np.array([16000], np.int32)}))
    return requests


def test_a_stream_through_tf_servings_loader_grows_into_the_whole_clips_transcript(
        session_answers):
    """Two streams sent in chunks of 1 and 0 samples, sizes that are not multiples of the hop,
    and larger ones, with the state carried from call to call as a client carries it: each
    transcript only grows, and ends as the `waveform` signature's for the whole clip."""
    answers, end = session_answers["stream"], 1 + len(STREAM_BOUNDS)  # a start, then a step a chunk
    steps, whole, refused = answers[1:end], answers[end], answers[end + 1:]
    texts = [step["transcript"].tolist() for step in steps]
    assert texts[-1] == whole["transcript"].tolist() and all(texts[-1])
    for earlier, later in itertools.pairwise(texts):
        assert all(b.startswith(a) for a, b in zip(earlier, later))
    assert all(answer.get("error") == "InvalidArgumentError" for answer in refused)
    messages = [answer["message"] for answer in refused]
    for message, expected in zip(messages, [
            "waveform holds NaN or infinite samples",
            "waveform and final must have one row per stream",
            "state_features must have shape [B ",
            "the state was made by the stream_start of another export",
            "this model streams audio at 8000 Hz only"]):
        assert expected in message, (expected, message)


def _encoding_requests():
    waves, _ = _clips(len(ENCODINGS), seed=58)
    requests = []
    for wave_, encoding in zip(waves, ENCODINGS):
        stereo = np.stack([wave_, 0.5 * wave_], axis=1)
        contents, reference = encode(stereo, CONFIG.sample_rate, encoding)
        requests += [("serving_default", {"audio_bytes": [contents]}),
                     ("waveform", {"waveform": reference.mean(axis=1)[None].astype(np.float32),
                                   "sample_rate": np.int32(CONFIG.sample_rate)})]
    return requests


def test_every_wav_encoding_is_served_as_its_reference_decode(session_answers):
    """8-, 16-, 24-, 32-bit PCM, 32- and 64-bit float, plain and extensible, stereo: the
    export transcribes each file as the `waveform` signature transcribes its reference
    decode (mono mix of what Python's `wave` module or numpy reads)."""
    answers = session_answers["encodings"]
    for encoding, served, reference in zip(ENCODINGS, answers[::2], answers[1::2]):
        assert served["transcript"].tolist() == reference["transcript"].tolist(), encoding
    assert any(answer["transcript"][0] for answer in answers)


def test_saved_model_cli_runs_the_export(trained, tmp_path):
    waves, _ = _clips(1, seed=56)
    clip = wav_bytes(waves[0], CONFIG.sample_rate)
    clips = tmp_path / "clips.npy"
    np.save(clips, np.array([clip], dtype=object), allow_pickle=True)
    output = saved_model_cli_run(trained["export_path"], "serving_default",
                                 inputs=f"audio_bytes={clips}")
    expected = trained["server"].serve(tf.constant([clip]))["transcript"].numpy()[0]
    assert "Result for output key transcript" in output
    assert repr(expected) in output


def _warmup_and_readme_requests(path):
    clip = wav_bytes(_clips(1, seed=57)[0][0], CONFIG.sample_rate)
    return warmup_and_readme_requests(path, "speech_recognition", {"clip.wav": clip})


def test_warmup_and_readme_rest_requests_answer_through_the_session_path(trained,
                                                                         session_answers):
    """The export's warm-up records reach every signature; README's REST bodies, turned into
    tensors as TF Serving's REST API does, name real inputs with the right dtypes."""
    _, rest = _warmup_and_readme_requests(trained["export_path"])
    assert [signature for signature, _ in rest] == ["serving_default", "stream_start"]
    assert all("error" not in answer for answer in session_answers["warm-up and README"])


def test_readmes_rest_streaming_client_transcribes_as_the_whole_clip(trained):
    """README's client loop, with its `predict` answered as TF Serving's REST API answers:
    JSON in, tensors of the signature's dtypes, JSON out."""
    loaded = tf.saved_model.load(trained["export_path"])

    def predict(signature, inputs):
        function = loaded.signatures[signature]
        specs = function.structured_input_signature[1]
        inputs = json.loads(json.dumps(inputs))
        outputs = function(**{name: tf.constant(value, specs[name].dtype)
                              for name, value in inputs.items()})
        return json.loads(json.dumps({
            name: [item.decode() for item in value.numpy()] if value.dtype == tf.string
            else value.numpy().tolist() for name, value in outputs.items()}))

    (block,) = [b for b in re.findall(r"```python\n(.*?)```", _readme(), flags=re.DOTALL)
                if "def stream(" in b]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    namespace["predict"] = predict
    waves, _ = _clips(2, seed=62)
    wave = np.concatenate(waves)
    chunks = [wave[start:start + 2560].tolist() for start in range(0, len(wave), 2560)]
    transcripts = list(namespace["stream"](chunks, CONFIG.sample_rate))
    whole = loaded.signatures["waveform"](waveform=tf.constant(wave[None], tf.float32),
                                          sample_rate=tf.constant(CONFIG.sample_rate))
    assert transcripts[-1] == whole["transcript"].numpy()[0].decode() != ""


def _flatter_copy(model, head_scale):
    """The trained model with its CTC head's logits scaled down: less sure of each symbol,
    so a beam holds paths that differ in them."""
    copy = build_recognizer(CONFIG, vocabulary_size=model.get_layer("ctc_head").units - 1)
    copy.set_weights(model.get_weights())
    for weight in copy.get_layer("ctc_head").weights:
        weight.assign(weight * head_scale)
    return copy


def test_lexicon_decoding_serves_known_words_or_the_best_path(trained, tmp_path):
    waves, _ = _clips(8, seed=52)
    batch = tf.constant([wav_bytes(w, CONFIG.sample_rate) for w in waves])
    beam = dataclasses.replace(CONFIG, beam_size=8)
    model = _flatter_copy(trained["model"], head_scale=0.2)
    plain = serving.SpeechServer(model, trained["vocabulary"], beam)
    best = plain.serve(batch)
    lexicon = [str(digit) for digit in range(10)]  # "*", "#" and runs like "63" are refused
    server = serving.SpeechServer(
        model, trained["vocabulary"], dataclasses.replace(beam, lexicon_decoding=True),
        lexicon=lexicon)
    constrained = [t.decode() for t in server.serve(batch)["transcript"].numpy()]
    unconstrained = [t.decode() for t in best["transcript"].numpy()]
    for text, fallback in zip(constrained, unconstrained):
        assert text == fallback or (text and set(text.split()) <= set(lexicon))
    # Some best paths hold a word the lexicon refuses: a path of the beam without it is served.
    assert constrained != unconstrained
    served = call_in_fresh_process(serving.export(server, str(tmp_path)), "audio_bytes",
                                   batch.numpy().tolist())
    assert served["transcript"] == constrained


def test_lexicon_decoding_without_a_beam_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="needs beam_size > 1"):  # the config refuses it
        dataclasses.replace(CONFIG, lexicon_decoding=True)
    assert not (tmp_path / "run").exists()


def test_other_rates_stereo_and_the_waveform_signature_give_the_same_transcripts(trained):
    waves, _ = _clips(3, seed=51)
    loaded = tf.saved_model.load(trained["export_path"])
    serve = loaded.signatures["serving_default"]
    reference = serve(audio_bytes=tf.constant(
        [wav_bytes(w, CONFIG.sample_rate) for w in waves]))["transcript"].numpy()
    assert any(reference)
    upsampled = [np.repeat(w, 2) for w in waves]  # the same sound at 16 kHz
    stereo_16k = [tf.audio.encode_wav(np.stack([w, w], axis=1), 16000).numpy() for w in upsampled]
    np.testing.assert_array_equal(serve(audio_bytes=tf.constant(stereo_16k))["transcript"],
                                  reference)
    waveform = loaded.signatures["waveform"]
    for wave, expected in zip(waves, reference):
        out = waveform(waveform=tf.constant(wave[None]), sample_rate=tf.constant(8000))
        assert out["transcript"].numpy()[0] == expected


def test_silence_empty_clips_and_a_long_clip(trained):
    loaded = tf.saved_model.load(trained["export_path"])
    serve = loaded.signatures["serving_default"]
    silent = wav_bytes(np.zeros(8000, np.float32), CONFIG.sample_rate)
    empty = wav_bytes(np.zeros(0, np.float32), CONFIG.sample_rate)
    waves, _ = _clips(1, seed=52)
    normal = wav_bytes(waves[0], CONFIG.sample_rate)
    out = serve(audio_bytes=tf.constant([silent, empty, normal]))["transcript"].numpy()
    assert out[0] == b"" and out[1] == b""
    alone = serve(audio_bytes=tf.constant([normal]))["transcript"].numpy()[0]
    assert out[2] == alone  # batching with odd clips changes nothing
    # Two minutes of tones: 3000 subsampled frames; full attention would need 3000^2 scores
    # per head and layer, chunks need (chunk + context) per frame.
    long_waves, _ = _clips(80, seed=53)
    long_clip = np.concatenate(long_waves)[:120 * CONFIG.sample_rate]
    transcript = serve(audio_bytes=tf.constant([wav_bytes(long_clip, CONFIG.sample_rate)]))
    assert len(transcript["transcript"].numpy()[0]) > 100


def test_export_uses_only_tensorflow_ops(trained):
    assert classify_ops(saved_model_ops(trained["export_path"]))["unknown"] == []


def test_cli_transcribe_and_evaluate(trained, tmp_path, capsys):
    export_dir = str(trained["root"] / "export")
    waves, _ = _clips(1, seed=55)
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    good.write_bytes(wav_bytes(waves[0], CONFIG.sample_rate))
    bad.write_bytes(b"garbage")
    assert cli.main(["transcribe", export_dir, str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: ")
    assert f"{bad}: error: not a WAV file: it does not begin with a RIFF/WAVE header" in (
        captured.err)
    # An export of another application is named, with the command that serves it.
    with pytest.raises(SystemExit):
        cli.main(["classify", export_dir, str(good)])
    assert "is a speech recognition export: serve it with `tfformer transcribe`" in (
        capsys.readouterr().err)
    output = tmp_path / "hypotheses.txt"
    assert cli.main(["evaluate", "speech_recognition", "--model", export_dir, "--set",
                     "builtin_examples=100", "--output", str(output)]) == 0
    summary = capsys.readouterr().out
    assert "WER" in summary and "CER" in summary
    assert len(output.read_text().splitlines()) == 10


def test_load_and_export_a_run_again(trained, tmp_path, capsys):
    from applications.speech_recognition import load

    recognizer = load(str(trained["root"] / "run"))
    waves, _ = _clips(3, seed=59)
    clips = [wav_bytes(w, CONFIG.sample_rate) for w in waves]
    expected = [t.decode() for t in trained["server"].serve(tf.constant(clips))[
        "transcript"].numpy()]
    assert recognizer.transcribe(clips) == expected
    assert recognizer.transcribe(waves) == expected  # waveforms, one request each
    assert cli.main(["export", "speech_recognition", "--workdir", str(trained["root"] / "run"),
                     "--export-dir", str(tmp_path / "exports")]) == 0
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["1"]
    capsys.readouterr()


def test_cli_streams_a_wav_file_and_raw_pcm_from_standard_input(trained, tmp_path, capsys):
    """`tfformer transcribe --stream clip.wav` prints each word with its time and ends with the
    whole clip's transcript; `--stream -` does the same from a real pipe of 16-bit PCM."""
    export_dir = str(trained["root"] / "export")
    waves, _ = _clips(3, seed=61)
    wave = np.concatenate(waves)
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(wave, CONFIG.sample_rate))
    expected = trained["server"].serve(tf.constant([clip.read_bytes()]))["transcript"].numpy()[0]
    assert cli.main(["transcribe", "--stream", str(clip), "--chunk-ms", "250", export_dir]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"transcript: {expected.decode()}" and expected
    times = [float(line.split(" s  ")[0]) for line in lines[:-1]]
    assert [line.split(" s  ")[1] for line in lines[:-1]] == expected.decode().split()
    assert times == sorted(times) and times[-1] <= len(wave) / CONFIG.sample_rate + 1e-9

    pcm = clip.read_bytes()[44:]  # the same 16-bit samples, without encode_wav's header
    piped = subprocess.run(
        [sys.executable, "-m", "applications.cli", "transcribe", "--stream", "-",
         export_dir], input=pcm, capture_output=True, timeout=300, check=False)
    assert piped.returncode == 0, piped.stderr.decode()[-2000:]
    assert piped.stdout.decode().splitlines()[-1] == lines[-1]

    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--stream", str(tmp_path / "missing.wav"), export_dir])
    assert "missing.wav" in capsys.readouterr().err
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"hello")
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--stream", str(garbage), export_dir])
    assert "garbage.wav: not a WAV file: it does not begin with a RIFF/WAVE header" in (
        capsys.readouterr().err)


def test_ctrl_c_ends_a_live_stream_with_its_final_transcript(trained):
    """`arecord | tfformer transcribe --stream -` stops with Ctrl-C: a real SIGINT while it
    waits for more audio ends the stream as its end would (the final call flushes the
    look-ahead), prints the whole transcript and exits 0 without a traceback."""
    import os
    import signal
    import time

    waves, _ = _clips(3, seed=61)
    clip = wav_bytes(np.concatenate(waves), CONFIG.sample_rate)
    expected = trained["server"].serve(tf.constant([clip]))["transcript"].numpy()[0].decode()
    assert len(expected.split()) >= 2
    process = subprocess.Popen(
        [sys.executable, "-m", "applications.cli", "transcribe", "--stream", "-",
         "--chunk-ms", "100", str(trained["root"] / "export")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"))
    process.stdin.buffer.write(clip[44:])  # the 16-bit samples; stdin stays open, as a live
    process.stdin.flush()  # microphone's would
    words = []
    for line in process.stdout:  # all but the last word complete before the stream ends
        words.append(line)
        if len(words) == len(expected.split()) - 1:
            break
    time.sleep(2)  # the rest of the audio is read and sent: the client waits for more
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [*words, *out.splitlines(keepends=True)]
    assert lines[-1].strip() == f"transcript: {expected}"
    assert [line.split(" s  ")[1].strip() for line in lines[:-1]] == expected.split()


@pytest.mark.slow  # 20 s; int8 exports of translation and images stay in the default run
def test_an_int8_export_of_the_run_serves_as_the_quantized_recognizer(trained, tmp_path, capsys):
    """`tfformer export --quantize int8`: every projection and the CTC head hold int8
    kernels (the subsampling convolutions stay float), and TF Serving's loader transcribes
    as the quantized recognizer does, nearly always as the float one."""
    import keras

    from applications.speech_recognition import load

    quantized = load(str(trained["root"] / "run"), quantize="int8")
    projections = [layer for layer in quantized.model._flatten_layers()
                   if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense))]
    assert {layer.name for layer in projections} >= {"projection", "query", "ctc_head"}
    assert {layer.quantization_mode for layer in projections} == {"int8"}
    assert cli.main(["export", "speech_recognition", "--workdir", str(trained["root"] / "run"),
                     "--export-dir", str(tmp_path / "exports"), "--quantize", "int8"]) == 0
    assert "weights to int8" in capsys.readouterr().out
    waves, _ = _clips(8, seed=61)
    clips = [wav_bytes(w, CONFIG.sample_rate) for w in waves]
    (served,) = serve_in_session(str(tmp_path / "exports" / "1"),
                                 [("serving_default", {"audio_bytes": clips})])
    transcripts = [t.decode() for t in served["transcript"]]
    assert transcripts == quantized.transcribe(clips)
    floats = [t.decode() for t in trained["server"].serve(tf.constant(clips))["transcript"].numpy()]
    assert sum(q == f for q, f in zip(transcripts, floats)) >= 6, (transcripts, floats)


def test_other_applications_commands_name_this_export_and_run(trained, capsys, tmp_path):
    from tests.support.wrong_kind import assert_other_applications_name_it

    assert_other_applications_name_it(trained["root"], "speech_recognition", capsys, tmp_path)
