"""Scoring translations with sacreBLEU (cased, detokenized) and chrF."""

import sacrebleu
import tensorflow as tf

from applications.common.bad_examples import bad_data_errors
from applications.common.export_client import load_export
from applications.common.text_files import write_lines
from applications.translation import corpus, data


def score(hypotheses, references):
    """{"bleu", "chrf", "exact"} of detokenized, cased hypotheses against one reference each.

    `exact` is the percentage translated exactly. (On the built-in task most
    German outputs are one or two words, so word 4-gram BLEU says little
    there; chrF and exact match do.)
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    exact = sum(h == r for h, r in zip(hypotheses, references))
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
        "exact": 100.0 * exact / max(len(references), 1),
    }


def describe(result, builtin):
    """The scores as one line, in the metrics the task is judged by: sacreBLEU, chrF and exact
    match on a corpus; chrF and exact match on the built-in task, whose German outputs are
    mostly one or two words, too short for BLEU's word 4-grams (it reads 0 there)."""
    if builtin:
        return (f"chrF {result['chrf']:.1f}, exact {result['exact']:.1f}% (the built-in task is "
                f"scored by chrF and exact match: its outputs are too short for BLEU)")
    return (f"sacreBLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f}, exact "
            f"{result['exact']:.1f}%")


def translate_batches(translate_fn, sentences, batch_size=64):
    """Calls a serving function (string [B] -> {"translation"}) over `sentences`."""
    outputs = []
    for start in range(0, len(sentences), batch_size):
        batch = tf.constant(sentences[start:start + batch_size])
        outputs.extend(t.decode("utf-8") for t in translate_fn(batch)["translation"].numpy())
    return outputs


def evaluate(model_path, data_dir, config, split="test", output=None, batch_size=64):
    """Translates a split with an export, as TF Serving would, and scores it."""
    served = load_export(model_path, "text")  # another kind of export: named at once
    splits = corpus.list_corpus(data_dir, config)
    with bad_data_errors():
        pairs = data.read_pairs(splits[split], config) if split in splits else []
    if not pairs:
        raise ValueError(f"the {split} split of {data_dir or 'the built-in data'} is empty")
    translate = served.signatures["serving_default"]
    hypotheses = translate_batches(lambda text: translate(text=text), [s for s, _ in pairs],
                                   batch_size)
    result = score(hypotheses, [t for _, t in pairs])
    if output:
        write_lines(output, hypotheses)
    summary = (f"{split}: {describe(result, data_dir is None)} on {len(pairs)} sentences"
               + (f"; hypotheses written to {output}" if output else ""))
    return {**result, "sentences": len(pairs), "hypotheses": hypotheses, "summary": summary}
