"""Learning-rate schedules."""


import keras


def warmup_cosine_schedule(learning_rate, warmup_fraction, total_steps):
    """Linear warm-up to `learning_rate` over a fraction of the steps, then cosine decay to 0,
    in global steps."""
    warmup = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, total_steps - warmup),
        warmup_target=learning_rate, warmup_steps=warmup)
