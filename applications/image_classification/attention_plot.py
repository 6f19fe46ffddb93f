"""The attention rollout of a classified image, drawn from an export's `attention` signature."""

from tfformer.plots import plot_rollout


def plot_image_attention(signature, image_file, path, layer=None, head=None):
    """Classifies `image_file` with an export's `attention` signature, prints its top
    label and score, and draws the rollout over the image to `path`. The rollout
    averages every layer and head, so `layer` and `head` are not used. Returns the
    (grid, grid) map drawn."""
    import tensorflow as tf

    with open(image_file, "rb") as handle:
        image_bytes = handle.read()
    outputs = signature(image_bytes=tf.constant([image_bytes]))
    label = outputs["top_k_labels"].numpy()[0][0].decode("utf-8")
    print(f"{label} {outputs['top_k_scores'].numpy()[0][0]:.3f}")
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False).numpy()
    return plot_rollout(image, outputs["rollout"].numpy()[0], path,
                        title=f"attention rollout ({label})")
