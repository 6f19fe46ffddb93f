"""Bounded samples for the passes that happen before training starts (a tokenizer, feature
statistics), so that their time does not grow with the data set."""

import numpy as np


def evenly_spread(items, count):
    """At most `count` of `items`, evenly spaced from the first to the last (all of them,
    in order, when there are no more): a bounded sample that sees the whole data set, not
    its head.

    >>> evenly_spread(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count)]
