"""Marian translation speed in the engines users run these checkpoints with: transformers'
`generate` on PyTorch, and CTranslate2 (its Marian converter, float32 and int8). It times the
directory that `marian_import.py --keep DIR` wrote, with the same sentences. It runs in a
separate venv, because neither engine is a dependency of tfformer:

    python3 -m venv /tmp/engines && /tmp/engines/bin/pip install torch transformers \\
        sentencepiece safetensors ctranslate2
    .venv/bin/python benchmarks/marian_import.py --keep /tmp/marian --engines-python /tmp/engines/bin/python

`marian_import.py` calls this script after timing tfformer's export, and reports the ratios.
Each engine is timed end to end, strings in and strings out (tokenization and detokenization
included, as tfformer's export does them in the graph). It uses 2 threads, greedy and
beam 4, batch 1 and 32, at most 64 generated tokens. It prints one JSON line.
"""

import json
import os
import sys
import time

import numpy as np

BATCHES = {1: 40, 32: 8}  # batch size: timed calls, as serving_speed.py


def time_calls(translate, sentences, batch, calls):
    """p50 latency and items/s of `translate` on `batch` items per call (3 calls to warm up)."""
    def batch_at(call):
        return [sentences[(call * batch + i) % len(sentences)] for i in range(batch)]
    for call in range(3):
        translate(batch_at(call))
    latencies = []
    for call in range(calls):
        request = batch_at(call)
        started = time.perf_counter()
        translate(request)
        latencies.append(time.perf_counter() - started)
    latencies = np.array(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "items_per_s": round(float(batch * calls / latencies.sum() * 1000), 1)}


def _measure(translate_with, sentences):
    results = {}
    for kind, beams in (("beam", 4), ("greedy", 1)):
        def translate(batch, beams=beams):
            return translate_with(batch, beams)
        results[kind] = {f"batch_{batch}": time_calls(translate, sentences, batch, calls)
                         for batch, calls in BATCHES.items()}
    return results


def main(directory, max_new_tokens=64):
    import ctranslate2
    import torch
    import transformers

    torch.set_num_threads(2)
    checkpoint = os.path.join(directory, "opus-mt-en-de-shaped")
    with open(os.path.join(directory, "sentences.txt"), encoding="utf-8") as handle:
        sentences = [line.rstrip("\n") for line in handle]
    tokenizer = transformers.MarianTokenizer.from_pretrained(checkpoint)
    model = transformers.MarianMTModel.from_pretrained(checkpoint).eval()

    def transformers_translate(batch, beams):
        with torch.inference_mode():
            inputs = tokenizer(batch, return_tensors="pt", padding=True, truncation=True)
            ids = model.generate(**inputs, num_beams=beams, do_sample=False,
                                 max_new_tokens=max_new_tokens)
        return tokenizer.batch_decode(ids, skip_special_tokens=True)

    results = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "ctranslate2": ctranslate2.__version__},
               "transformers": _measure(transformers_translate, sentences)}
    print("transformers", json.dumps(results["transformers"]), file=sys.stderr, flush=True)
    for quantization in ("float32", "int8"):
        converted = os.path.join(directory, f"ctranslate2_{quantization}")
        if not os.path.exists(converted):
            ctranslate2.converters.TransformersConverter(checkpoint).convert(
                converted, quantization=quantization)
        translator = ctranslate2.Translator(converted, device="cpu", inter_threads=1,
                                            intra_threads=2)

        def ctranslate2_translate(batch, beams, translator=translator):
            tokens = [tokenizer.convert_ids_to_tokens(tokenizer.encode(text, truncation=True))
                      for text in batch]
            outputs = translator.translate_batch(tokens, beam_size=beams,
                                                 max_decoding_length=max_new_tokens)
            return [tokenizer.decode(tokenizer.convert_tokens_to_ids(output.hypotheses[0]),
                                     skip_special_tokens=True) for output in outputs]

        results[f"ctranslate2_{quantization}"] = _measure(ctranslate2_translate, sentences)
        print(f"ctranslate2_{quantization}", json.dumps(results[f"ctranslate2_{quantization}"]),
              file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
