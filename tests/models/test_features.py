from __future__ import annotations

import numpy as np

from sentiflow.models.features import FeatureConfig, HashedNgramFeaturizer

TEXTS = ["i love it 😍", "a", "das ist gut, sehr gut", "今日はいい天気", "x y"]
LANGS = ["en", "und", "de", "ja", "en"]


def test_serving_scores_equal_sparse_matrix_product() -> None:
    f = HashedNgramFeaturizer(FeatureConfig(bits=12))
    f.fit_idf(TEXTS, LANGS)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((f.n_features, 3)).astype(np.float32)
    b = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    assert f.idf is not None
    served = f.scores(f.occurrences(TEXTS, LANGS), f.score_table(w * f.idf[:, None]), b)
    expected = f.transform(TEXTS, LANGS) @ w + b
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)


def test_features_do_not_depend_on_batch_neighbours() -> None:
    f = HashedNgramFeaturizer(FeatureConfig(bits=14))
    together = f.transform(TEXTS, LANGS).toarray()
    alone = np.vstack([f.transform([t], [lg]).toarray() for t, lg in zip(TEXTS, LANGS,
                                                                         strict=True)])
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def test_expected_number_of_char_ngrams_and_words() -> None:
    cfg = FeatureConfig(bits=16, char_orders=(2,), word_unigrams=True, word_bigrams=True,
                        language_feature=False)
    doc, idx = HashedNgramFeaturizer(cfg).occurrences(["ab cd"]).pairs()
    # " ab cd " has 6 bigrams of characters, 2 words and 1 word pair.
    assert len(idx) == 6 + 2 + 1
    assert set(doc.tolist()) == {0}


def test_config_round_trips_through_json() -> None:
    cfg = FeatureConfig(bits=13, char_orders=(2, 4), word_bigrams=False)
    assert FeatureConfig.from_json(cfg.to_json()) == cfg


def test_empty_batch() -> None:
    f = HashedNgramFeaturizer(FeatureConfig(bits=10))
    assert f.transform([], []).shape == (0, 1 << 10)
