"""Importing and serving a Marian model of opus-mt-en-de's shape: import time, export time and
size, and served latency through TF Serving's session path.

    .venv/bin/python benchmarks/marian_import.py [--max-length 65]

Nothing here downloads: the checkpoint is made at random with opus-mt-en-de's exact config
(d 512, 6+6 layers, 8 heads, FFN 2048, vocabulary 58,101, pad 58,100, swish, beam 4) as a
Hugging Face directory (`model.safetensors`, `source.spm`, `target.spm`, `vocab.json`, the
three JSON configs), so `tfformer import translation` reads what it would read from the real
one. The SentencePiece models are trained on the built-in sentences and `vocab.json` fills
the rest of the 58,101 ids with pieces no input produces. A random model rarely emits
`</s>`, so every translation runs to the generation config's `max_length`: `--max-length 65`
(64 generated tokens) keeps a served call comparable to a real sentence's; opus-mt's own is
512. Latency is `serving_speed.py`'s measurement (fresh process, warm-up replayed, p50/p99
and sentences/s at batch 1 and 32, beam and greedy). Writes
benchmarks/results/marian_import.json. `--keep DIR` keeps the checkpoint, the run and the
export in DIR, with the sentences timed (`sentences.txt`), for `marian_engines.py` to time
transformers and CTranslate2 on the same model and sentences.
"""

import argparse
import json
import os
import tempfile

import numpy as np
from serving_speed import in_fresh_process
from speed import import_and_export, run_engines, write_record

OPUS_MT_EN_DE = {  # config.json of Helsinki-NLP/opus-mt-en-de, the fields that shape it
    "model_type": "marian", "architectures": ["MarianMTModel"], "d_model": 512,
    "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 8,
    "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
    "vocab_size": 58101, "decoder_vocab_size": 58101, "pad_token_id": 58100,
    "decoder_start_token_id": 58100, "eos_token_id": 0, "activation_function": "swish",
    "scale_embedding": True, "share_encoder_decoder_embeddings": True,
    "tie_word_embeddings": True, "max_position_embeddings": 512, "dropout": 0.1,
    "activation_dropout": 0.0, "attention_dropout": 0.0, "num_beams": 4, "max_length": 512,
}


def _random_state_dict(config, rng):
    """Marian's names and PyTorch shapes, normal(0, 0.02) weights, layer norms at 1 and 0."""
    d, ffn, vocabulary = config["d_model"], config["encoder_ffn_dim"], config["vocab_size"]

    def normal(*shape):
        return rng.normal(0, 0.02, shape).astype(np.float32)

    weights = {"model.shared.weight": normal(vocabulary, d),
               "final_logits_bias": np.zeros((1, vocabulary), np.float32)}

    def attention(prefix):
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            weights[f"{prefix}.{name}.weight"] = normal(d, d)
            weights[f"{prefix}.{name}.bias"] = np.zeros(d, np.float32)

    def norm(prefix):
        weights[f"{prefix}.weight"] = np.ones(d, np.float32)
        weights[f"{prefix}.bias"] = np.zeros(d, np.float32)

    for side in ("encoder", "decoder"):
        for index in range(config[f"{side}_layers"]):
            prefix = f"model.{side}.layers.{index}"
            attention(f"{prefix}.self_attn")
            norm(f"{prefix}.self_attn_layer_norm")
            if side == "decoder":
                attention(f"{prefix}.encoder_attn")
                norm(f"{prefix}.encoder_attn_layer_norm")
            weights[f"{prefix}.fc1.weight"], weights[f"{prefix}.fc1.bias"] = (
                normal(ffn, d), np.zeros(ffn, np.float32))
            weights[f"{prefix}.fc2.weight"], weights[f"{prefix}.fc2.bias"] = (
                normal(d, ffn), np.zeros(d, np.float32))
            norm(f"{prefix}.final_layer_norm")
    return weights


def make_checkpoint(directory, max_length, seed=0):
    """A Hugging Face Marian directory of opus-mt-en-de's shape, at random."""
    import sentencepiece
    from safetensors.numpy import save_file

    from applications.translation import builtin_data, data

    os.makedirs(directory, exist_ok=True)
    config = {**OPUS_MT_EN_DE, "max_length": max_length}
    pairs = builtin_data.generate(4000, seed=seed)["train"]
    for side, index in (("source", 0), ("target", 1)):
        proto = data.train_sentencepiece([pair[index] for pair in pairs], 1000)
        with open(os.path.join(directory, f"{side}.spm"), "wb") as handle:
            handle.write(proto)
    pieces = set()
    for side in ("source", "target"):
        processor = sentencepiece.SentencePieceProcessor(
            model_file=os.path.join(directory, f"{side}.spm"))
        pieces.update(processor.id_to_piece(i) for i in range(4, processor.get_piece_size()))
    vocabulary = {"</s>": 0, "<unk>": 1}
    for piece in sorted(pieces):
        vocabulary[piece] = len(vocabulary)
    while len(vocabulary) < config["vocab_size"] - 1:
        vocabulary[f"\u2581unused{len(vocabulary)}"] = len(vocabulary)
    vocabulary["<pad>"] = config["pad_token_id"]
    files = {
        "config.json": config, "vocab.json": vocabulary,
        "generation_config.json": {"num_beams": 4, "max_length": max_length,
                                   "bad_words_ids": [[config["pad_token_id"]]],
                                   "decoder_start_token_id": config["pad_token_id"],
                                   "eos_token_id": 0, "pad_token_id": config["pad_token_id"]},
        "tokenizer_config.json": {"model_max_length": 512, "source_lang": "en",
                                  "target_lang": "de", "separate_vocabs": False},
    }
    for name, value in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            json.dump(value, handle)
    save_file(_random_state_dict(config, np.random.default_rng(seed)),
              os.path.join(directory, "model.safetensors"))



def _ratios(served, engines):
    """Each engine's median call time over tfformer's, the same batch of the same sentences
    (above 1: tfformer is faster)."""
    ours = {"beam": served["serving_default"], "greedy": served["greedy"]}
    return {engine: {kind: {batch: round(timings[kind][batch]["p50_ms"]
                                         / ours[kind][batch]["p50_ms"], 2)
                            for batch in timings[kind]}
                     for kind in timings}
            for engine, timings in engines.items() if engine != "versions"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-length", type=int, default=65,
                        help="the generation config's max_length (start token included)")
    parser.add_argument("--keep", metavar="DIR", help="write everything to DIR (kept)")
    parser.add_argument("--engines-python", metavar="PYTHON",
                        help="a venv's python with torch, transformers and ctranslate2: time "
                        "them too (marian_engines.py) and report tfformer's ratios")
    args = parser.parse_args()
    from serving_speed import sentences

    from applications.translation.import_marian import import_checkpoint
    from applications.translation.restore import load

    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or temporary
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "sentences.txt"), "w", encoding="utf-8") as handle:
            handle.writelines(sentence + "\n" for sentence in sentences(64))
        checkpoint = os.path.join(root, "opus-mt-en-de-shaped")
        make_checkpoint(checkpoint, args.max_length)
        path, sizes_and_times = import_and_export(import_checkpoint, load, checkpoint, root)
        record = {
            "command": f"python benchmarks/marian_import.py --max-length {args.max_length}",
            "shape": {key: OPUS_MT_EN_DE[key] for key in (
                "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                "vocab_size")},
            **sizes_and_times,
            "served": in_fresh_process("translation", path, warm=True),
        }
        if args.engines_python:
            record["engines"] = run_engines("marian_engines.py", args.engines_python, root)
            record["tfformer_speed_ratio"] = _ratios(record["served"], record["engines"])
    print(json.dumps(record, indent=1))
    write_record("marian_import", record)


if __name__ == "__main__":
    main()
