"""Train a small recognizer briefly on DTMF clips, export it, and serve it as TF Serving would."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from applications.common import cli
from applications.speech_recognition import builtin_data, serving
from applications.speech_recognition.config import PRESETS, SpeechRecognitionConfig
from applications.speech_recognition.evaluate import wav_bytes
from applications.speech_recognition.train import train
from tests.support.serving_checks import (
    call_in_fresh_process,
    classify_ops,
    saved_model_cli_run,
    serve_every_signature,
    serve_in_session,
    serve_warmup_and_readme_requests,
)
from tests.support.wav_files import ENCODINGS, encode
from tfformer.export import saved_model_ops

CONFIG = dataclasses.replace(SpeechRecognitionConfig(**PRESETS["tiny"]), builtin_examples=2000,
                             epochs=5, chunk_frames=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_recognition")
    result = train(CONFIG, workdir=str(root / "run"), export_dir=str(root / "export"),
                   verbose=0, examples=0)
    return {**result, "root": root}


def _clips(count, seed):
    return builtin_data.generate_split(count, CONFIG.sample_rate, seed)


def test_training_learns_the_task(trained):
    # Five short epochs: far from the tiny preset's quality, far from chance too.
    assert trained["scores"]["cer"] < 50.0
    assert trained["history"]["loss"][-1] < trained["history"]["loss"][0] / 3


def test_every_signature_answers_through_tf_servings_loader(trained):
    """TF Serving's path (MetaGraph into a session, restore op, init op, `Session.run`) answers
    every signature as `tf.saved_model.load` does, and as the trained server did."""
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
                              "sample_rate": np.int32(0)})]
    served, waveform, odd, bad, empty, empty_waveform, nan, rate_0 = serve_every_signature(
        trained["export_path"], requests)
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


def test_every_wav_encoding_is_served_as_its_reference_decode(trained):
    """8-, 16-, 24-, 32-bit PCM, 32- and 64-bit float, plain and extensible, stereo: the
    export transcribes each file as the `waveform` signature transcribes its reference
    decode (mono mix of what Python's `wave` module or numpy reads)."""
    waves, _ = _clips(len(ENCODINGS), seed=58)
    requests = []
    for wave_, encoding in zip(waves, ENCODINGS):
        stereo = np.stack([wave_, 0.5 * wave_], axis=1)
        contents, reference = encode(stereo, CONFIG.sample_rate, encoding)
        requests += [("serving_default", {"audio_bytes": [contents]}),
                     ("waveform", {"waveform": reference.mean(axis=1)[None].astype(np.float32),
                                   "sample_rate": np.int32(CONFIG.sample_rate)})]
    answers = serve_in_session(trained["export_path"], requests)
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


def test_warmup_and_readme_rest_requests_answer_through_the_session_path(trained):
    """The export's warm-up records reach every signature; README's REST bodies, turned into
    tensors as TF Serving's REST API does, name real inputs with the right dtypes."""
    clip = wav_bytes(_clips(1, seed=57)[0][0], CONFIG.sample_rate)
    warmup, rest = serve_warmup_and_readme_requests(trained["export_path"], "speech_recognition",
                                                    {"clip.wav": clip})
    assert len(rest) == 1


def test_lexicon_decoding_serves_known_words_or_the_best_path(trained, tmp_path):
    waves, _ = _clips(8, seed=52)
    batch = tf.constant([wav_bytes(w, CONFIG.sample_rate) for w in waves])
    beam = dataclasses.replace(CONFIG, beam_size=8)
    plain = serving.SpeechServer(trained["model"], trained["vocabulary"], beam)
    best = plain.serve(batch)
    lexicon = ["1", "2", "3", "4", "5"]
    server = serving.SpeechServer(
        trained["model"], trained["vocabulary"], dataclasses.replace(beam, lexicon_decoding=True),
        lexicon=lexicon)
    constrained = [t.decode() for t in server.serve(batch)["transcript"].numpy()]
    unconstrained = [t.decode() for t in best["transcript"].numpy()]
    for text, fallback in zip(constrained, unconstrained):
        assert text == fallback or (text and set(text.split()) <= set(lexicon))
    assert constrained != unconstrained  # the keypad has 16 symbols: some paths were refused
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
