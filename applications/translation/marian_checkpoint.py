"""A Hugging Face Marian (opus-mt) checkpoint as a `Translator`: its config as the
Translator's arguments, and one table from checkpoint names to Translator weights, each
transpose and reshape beside its name.

Marian, as `transformers`' `modeling_marian.py` computes it: post-LN blocks with layer-norm
epsilon 1e-5, swish feed-forward, embeddings scaled by sqrt(D) with [sin | cos] positions
from 0 and no layer norm on them, one embedding table shared by source, target and the
tied output projection, plus `final_logits_bias`; pad is the last id and starts decoding,
`</s>` is id 0.
"""

from tfformer.pretrained import weight_mapping as mapping
from applications.translation.config import TranslationConfig
from applications.translation.model import build_translator
from tfformer.pretrained import CheckpointError


def _fine_tuning_schedule(d_model, warmup_steps=500, peak=5e-5):
    """`learning_rate_scale` that makes the Transformer schedule peak at `peak` (after
    `warmup_steps`): a rate for fine-tuning, where the paper's from-scratch peak (7e-4 at
    d 512 and 4000 steps) would wreck the pretrained weights."""
    return peak * (d_model * warmup_steps) ** 0.5


def marian_config(hf_config, generation=None, tokenizer=None):
    """The `TranslationConfig` of a Marian checkpoint, from its `config.json`,
    `generation_config.json` and `tokenizer_config.json` (dicts; the last two optional).

    The architecture as Marian computes it, its tokenizer ("marian"), its decoding (the
    generation config's `num_beams`, `max_length` and `length_penalty`; an empty input is
    decoded too) and fine-tuning defaults: peak learning rate 5e-5 after 500 warm-up steps,
    label smoothing 0.1."""
    generation = {**hf_config, **(generation or {})}
    tokenizer = tokenizer or {}
    if hf_config.get("model_type") != "marian":
        raise CheckpointError(f"config.json describes a {hf_config.get('model_type')!r} model, "
                              "not a Marian one (model_type 'marian')")
    layers = {hf_config["encoder_layers"], hf_config["decoder_layers"]}
    heads = {hf_config["encoder_attention_heads"], hf_config["decoder_attention_heads"]}
    widths = {hf_config["encoder_ffn_dim"], hf_config["decoder_ffn_dim"]}
    if len(layers) > 1 or len(heads) > 1 or len(widths) > 1:
        raise CheckpointError("config.json's encoder and decoder differ in layers, heads or "
                              "feed-forward width, which a Translator does not support")
    vocabulary = hf_config["vocab_size"]
    if hf_config.get("decoder_vocab_size", vocabulary) != vocabulary or not hf_config.get(
            "share_encoder_decoder_embeddings", True) or tokenizer.get("separate_vocabs"):
        raise CheckpointError("config.json has separate source and target vocabularies, "
                              "which is not supported yet")
    if not hf_config.get("scale_embedding", False):
        raise CheckpointError("config.json has scale_embedding false, which is not supported")
    activation = {"swish": "silu", "silu": "silu", "relu": "relu", "gelu": "gelu"}.get(
        hf_config.get("activation_function", "swish"))
    if activation is None:
        raise CheckpointError(f"config.json's activation_function "
                              f"{hf_config['activation_function']!r} is not supported")
    d_model = hf_config["d_model"]
    max_target_length = int(generation.get("max_length") or 512) - 1  # after the start token
    return TranslationConfig(
        source_language=tokenizer.get("source_lang") or "en",
        target_language=tokenizer.get("target_lang") or "de",
        tokenizer="marian", vocabulary_size=vocabulary, shared_vocabulary=True,
        tie_embeddings=True, num_layers=layers.pop(), d_model=d_model, num_heads=heads.pop(),
        intermediate_dim=widths.pop(), dropout=hf_config.get("dropout", 0.1),
        activation_dropout=hf_config.get("activation_dropout", 0.0), norm_first=False,
        activation=activation, layer_norm_epsilon=1e-5, position="sinusoidal_halves",
        logits_bias=True,
        max_source_length=int(tokenizer.get("model_max_length") or 512),
        max_target_length=max_target_length,
        beam_size=int(generation.get("num_beams") or 1),
        length_penalty=float(generation.get("length_penalty", 1.0)),
        max_decode_ratio=1.0, max_decode_extra=max_target_length, translate_empty=True,
        label_smoothing=0.1, warmup_steps=500,
        learning_rate_scale=_fine_tuning_schedule(d_model, 500))


def build_marian_translator(hf_config):
    """The (built, untrained) Translator of a Marian `config.json` (a dict)."""
    vocabulary = hf_config["vocab_size"]
    return build_translator(marian_config(hf_config), vocabulary, vocabulary,
                            hf_config["pad_token_id"])


def _block(prefix, ours, heads, cross_attention):
    """One encoder or decoder layer: self-attention, (cross-attention,) feed-forward, each
    followed by its layer norm (post-LN)."""
    def attention(theirs, mine):
        return mapping.attention(mine, f"{theirs}.q_proj", f"{theirs}.k_proj",
                                 f"{theirs}.v_proj", f"{theirs}.out_proj", heads)

    table = {**attention(f"{prefix}.self_attn", f"{ours}/self_attention"),
             **mapping.norm(f"{ours}/self_attention_norm", f"{prefix}.self_attn_layer_norm")}
    if cross_attention:
        table.update(attention(f"{prefix}.encoder_attn", f"{ours}/cross_attention"))
        table.update(mapping.norm(f"{ours}/cross_attention_norm",
                                  f"{prefix}.encoder_attn_layer_norm"))
    table.update(mapping.feed_forward(f"{ours}/feed_forward", f"{prefix}.fc1", f"{prefix}.fc2"))
    table.update(mapping.norm(f"{ours}/feed_forward_norm", f"{prefix}.final_layer_norm"))
    return table


def weight_table(num_layers, num_heads):
    """{our weight path (under "translator/"): (checkpoint name, transform or None)}."""
    table = {
        "target_embedding/token_embedding/embeddings": ("model.shared.weight", None),
        "logits_bias": ("final_logits_bias", lambda bias: bias.reshape(-1)),  # (1, V) -> (V,)
    }
    for index in range(num_layers):
        table.update(_block(f"model.encoder.layers.{index}", f"encoder/layer_{index}",
                            num_heads, cross_attention=False))
        table.update(_block(f"model.decoder.layers.{index}", f"decoder/layer_{index}",
                            num_heads, cross_attention=True))
    return table


# Copies of the shared table (Marian's export writes them; `transformers` ties them back) and
# the sinusoid tables it recomputes: nothing to load from them.
_DERIVED = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
            "model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight",
            "lm_head.weight")


def load_marian_weights(model, state_dict, source="the checkpoint"):
    """Assigns a Marian state dict ({name: array}) to a Translator built by
    `build_marian_translator`; every weight must be found with its shape."""
    mapping.assign_weights(model, weight_table(model.num_layers, model.num_heads), state_dict,
                           source, skip=_DERIVED)
