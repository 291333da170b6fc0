"""Text ops: TfIdfVectorizer."""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register


def _ngram_table(pool: list, ngram_counts: list[int], min_n: int, max_n: int) -> dict:
    """tuple(n-gram) -> its position in the pool's n-gram order, for min_n <= n <= max_n.

    ``ngram_counts[i]`` is where the (i+1)-grams start in ``pool``; n-grams are numbered in
    pool order across all sizes (sizes outside [min_n, max_n] still take their numbers).
    """
    table: dict[tuple, int] = {}
    number = 0
    for i, start in enumerate(ngram_counts):
        n = i + 1
        end = ngram_counts[i + 1] if i + 1 < len(ngram_counts) else len(pool)
        if (end - start) % n:
            raise ValueError(f"TfIdfVectorizer: the {n}-gram part of the pool has "
                             f"{end - start} items, not a multiple of {n}")
        for k in range(start, end, n):
            if min_n <= n <= max_n:
                table.setdefault(tuple(pool[k:k + n]), number)
            number += 1
    return table


def _count_row(row: list, table: dict, columns: list[int], out: np.ndarray, min_n: int,
               max_n: int, max_skip: int) -> None:
    """Adds to ``out`` every n-gram of ``row`` found in ``table``: items ``skip + 1`` apart
    for every skip in [0, max_skip]; 1-grams count once (skips do not change them)."""
    length = len(row)
    for n in range(min_n, max_n + 1):
        skips = range(1) if n == 1 else range(max_skip + 1)
        for skip in skips:
            step = skip + 1
            for start in range(length - (n - 1) * step):
                key = tuple(row[start + j * step] for j in range(n))
                number = table.get(key)
                if number is not None:
                    out[columns[number]] += 1


@register("TfIdfVectorizer", since=9)
def tfidf_vectorizer(x, *, max_gram_length=None, max_skip_count=None, min_gram_length=None,
                     mode=None, ngram_counts=None, ngram_indexes=None, pool_int64s=None,
                     pool_strings=None, weights=None):
    """N-gram counts of a [C] or [N, C] input (strings or integers) over the pool's n-grams;
    output [output_size] or [N, output_size] float32, output_size = max(ngram_indexes) + 1.
    TF: the counts; IDF: the n-gram's weight (1 without weights) where the count is > 0;
    TFIDF: weight * count. The j-th n-gram of the pool is counted in column ngram_indexes[j]
    and weighted by weights[j]."""
    for name, val in (("max_gram_length", max_gram_length), ("max_skip_count", max_skip_count),
                      ("min_gram_length", min_gram_length), ("mode", mode),
                      ("ngram_counts", ngram_counts), ("ngram_indexes", ngram_indexes)):
        if val is None:
            raise ValueError(f"TfIdfVectorizer needs the '{name}' attribute")
    if mode not in ("TF", "IDF", "TFIDF"):
        raise ValueError(f"TfIdfVectorizer: unknown mode '{mode}'")
    min_n, max_n, max_skip = int(min_gram_length), int(max_gram_length), int(max_skip_count)
    if not 1 <= min_n <= max_n:
        raise ValueError(f"TfIdfVectorizer: bad gram lengths [{min_n}, {max_n}]")
    x = np.asarray(x)
    if x.ndim > 2:
        raise ValueError(f"TfIdfVectorizer input must be [C] or [N, C], got shape {x.shape}")
    strings = x.dtype == object or x.dtype.kind in "US"
    if strings:
        if pool_strings is None:
            raise ValueError("TfIdfVectorizer: a string input needs pool_strings")
        pool = [str(s) for s in pool_strings]
    else:
        if pool_int64s is None:
            raise ValueError("TfIdfVectorizer: an integer input needs pool_int64s")
        pool = [int(v) for v in np.asarray(pool_int64s).reshape(-1)]
    columns = [int(v) for v in np.asarray(ngram_indexes).reshape(-1)]
    counts = [int(v) for v in np.asarray(ngram_counts).reshape(-1)]
    table = _ngram_table(pool, counts, min_n, max_n)
    size = max(columns) + 1 if columns else 0
    rows = x.reshape(1, -1) if x.ndim < 2 else x
    freq = np.zeros((rows.shape[0], size), dtype=np.int64)
    for r in range(rows.shape[0]):
        row = [str(v) for v in rows[r]] if strings else [int(v) for v in rows[r]]
        _count_row(row, table, columns, freq[r], min_n, max_n, max_skip)
    w = None
    if weights is not None and len(weights) > 0:
        # weights[j] belongs to the pool's j-th n-gram, whose output column is
        # ngram_indexes[j].
        if len(weights) != len(columns):
            raise ValueError(f"TfIdfVectorizer: {len(weights)} weights for {len(columns)} "
                             "n-grams")
        w = np.zeros(size, np.float32)
        w[columns] = np.asarray(weights, np.float32)
    if mode == "TF":
        y = freq.astype(np.float32)
    elif mode == "IDF":
        present = (freq > 0).astype(np.float32)
        y = present if w is None else present * w
    else:
        y = freq.astype(np.float32) if w is None else freq.astype(np.float32) * w
    y = y.astype(np.float32)
    return y if x.ndim == 2 else y.reshape(size)
