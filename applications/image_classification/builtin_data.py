"""The built-in image set: coloured shapes on noisy backgrounds, rendered with a seed.

Each image holds one shape (circle, square, triangle, star, cross or ring) of
random size, position, rotation and colour on a noisy, randomly tinted
background, so a classifier has to learn shape, not colour or place.
Nothing is downloaded.
"""

import numpy as np

CLASS_NAMES = ("circle", "square", "triangle", "star", "cross", "ring")


def _polar(size, cx, cy, angle):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    radius = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) - angle
    # Coordinates in the shape's rotated frame.
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return radius, theta, u, v


def shape_mask(name, size, cx, cy, r, angle):
    """Boolean (size, size) mask of one shape with centre (cx, cy) and radius r."""
    radius, theta, u, v = _polar(size, cx, cy, angle)
    if name == "circle":
        return radius <= r
    if name == "square":
        half = r / np.sqrt(2.0)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if name == "triangle":
        # Inside the three half-planes of an equilateral triangle of circumradius r.
        inside = np.ones_like(radius, dtype=bool)
        for k in range(3):
            normal = 2 * np.pi * k / 3 + np.pi / 2
            inside &= u * np.cos(normal) + v * np.sin(normal) <= r / 2
        return inside
    if name == "star":
        # Five points: the boundary radius swings between r and 0.45 r.
        wave = np.abs(((theta * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at tips, 0 between
        return radius <= r * (0.45 + 0.55 * wave)
    if name == "cross":
        arm = r * 0.3
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if name == "ring":
        return (radius <= r) & (radius >= r * 0.6)
    raise ValueError(f"unknown shape {name!r}")


def render(name, size, rng):
    """One uint8 (size, size, 3) image of shape `name`."""
    background = rng.uniform(0, 255, size=3)
    image = np.clip(background + rng.normal(0, 25, size=(size, size, 3)), 0, 255)
    r = rng.uniform(0.22, 0.42) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    colour = rng.uniform(0, 255, size=3)
    while np.abs(colour - background).sum() < 150:  # keep the shape visible
        colour = rng.uniform(0, 255, size=3)
    mask = shape_mask(name, size, cx, cy, r, rng.uniform(0, 2 * np.pi))
    image[mask] = np.clip(colour + rng.normal(0, 10, size=(int(mask.sum()), 3)), 0, 255)
    return image.astype(np.uint8)


def generate(num_examples=6000, size=32, seed=0, val_fraction=0.1, test_fraction=0.1):
    """{"train"|"val"|"test": (images uint8 (N, size, size, 3), labels int32 (N,))}."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASS_NAMES), size=num_examples).astype(np.int32)
    images = np.stack([render(CLASS_NAMES[label], size, rng) for label in labels])
    n_test = int(num_examples * test_fraction)
    n_val = int(num_examples * val_fraction)
    return {
        "test": (images[:n_test], labels[:n_test]),
        "val": (images[n_test:n_test + n_val], labels[n_test:n_test + n_val]),
        "train": (images[n_test + n_val:], labels[n_test + n_val:]),
    }
