"""Scoring transcripts with jiwer: word and character error rates."""

import jiwer
import numpy as np
import tensorflow as tf

from applications.common.bad_examples import bad_data_errors
from applications.common.export_client import load_export
from applications.common.text_files import write_lines
from applications.speech_recognition import clips, data


def score(hypotheses, references):
    """{"wer", "cer", "exact"} in percent. Empty references count as one word/character
    each, so silence transcribed as silence is no error and anything else is."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no references")
    pairs = [(r or "<silence>", h or "<silence>") for h, r in zip(hypotheses, references)]
    references, hypotheses = [r for r, _ in pairs], [h for _, h in pairs]
    exact = sum(h == r for h, r in zip(hypotheses, references))
    return {"wer": 100.0 * jiwer.wer(references, hypotheses),
            "cer": 100.0 * jiwer.cer(references, hypotheses),
            "exact": 100.0 * exact / len(references)}


def wav_bytes(waveform, sample_rate):
    """16-bit PCM WAV bytes of a float waveform in [-1, 1] (what a client would send)."""
    return tf.audio.encode_wav(np.asarray(waveform, np.float32)[:, None], sample_rate).numpy()


def transcribe_batches(audio_fn, waveforms, sample_rate, batch_size=32):
    """Calls a serving function (audio_bytes string [B] -> {"transcript"}) over waveforms."""
    outputs = []
    for start in range(0, len(waveforms), batch_size):
        batch = tf.constant([wav_bytes(w, sample_rate) for w in waveforms[start:start + batch_size]])
        outputs.extend(t.decode("utf-8") for t in audio_fn(batch)["transcript"].numpy())
    return outputs


def evaluate(model_path, data_dir, config, split="test", output=None, batch_size=32):
    """Transcribes a split through the export's WAV signature, as TF Serving would, and scores it."""
    served = load_export(model_path, "audio_bytes")  # another kind of export: named at once
    splits = clips.list_clips(data_dir, config)
    with bad_data_errors():
        waveforms, references = (data.read_split(splits[split], config) if split in splits
                                 else ([], []))
    if not waveforms:
        raise ValueError(f"the {split} split of {data_dir or 'the built-in data'} is empty")
    signature = served.signatures["serving_default"]
    hypotheses = transcribe_batches(lambda b: signature(audio_bytes=b), waveforms,
                                    config.sample_rate, batch_size)
    result = score(hypotheses, references)
    if output:
        write_lines(output, hypotheses)
    summary = (f"{split}: WER {result['wer']:.2f}%, CER {result['cer']:.2f}%, exact "
               f"{result['exact']:.1f}% on {len(references)} clips"
               + (f"; transcripts written to {output}" if output else ""))
    return {**result, "clips": len(references), "hypotheses": hypotheses, "summary": summary}
