"""The node as a user runs it: the real embedded default model (trained on ../shared/data)
behind a real Hypercorn, classifying posts in several languages detected automatically."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiflow.config.settings import load_settings
from sentiflow.node import open_node
from tests.net import free_port, serving

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.data]

#: Unambiguous posts: (expected language, expected sentiment, text).
CASES = [
    ("en", "positive", "I absolutely love this phone, best purchase I have ever made!"),
    ("en", "negative", "Terrible service, the worst experience of my life. I hate it."),
    ("es", "positive", "Me encanta este producto, es excelente y funciona perfecto."),
    ("es", "negative", "Horrible, el peor servicio que he tenido. Nunca más."),
    ("de", "positive", "Ich liebe dieses Produkt, es ist wirklich großartig und super!"),
    ("de", "negative", "Das ist der schlechteste Service, einfach furchtbar und enttäuschend."),
    ("fr", "positive", "J'adore ce produit, il est vraiment génial et parfait !"),
    ("fr", "negative", "Quelle horreur, le pire service que j'ai jamais eu, très déçu."),
    ("pt", "positive", "Adorei o produto, é maravilhoso e funciona perfeitamente!"),
    ("it", "negative", "Servizio pessimo, la peggiore esperienza, che schifo."),
    ("ja", "positive", "この商品は最高です。とても気に入りました。また買いたいです。"),
    ("zh", "negative", "质量太差了，非常失望，再也不会买了。"),
    ("id", "positive", "Pelayanannya sangat bagus dan makanannya enak sekali, puas!"),
    ("ar", "negative", "خدمة سيئة جدا وأسوأ تجربة في حياتي"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_default_model_classifies_real_text_in_many_languages(
        default_model_home: Path, tmp_path: Path) -> None:
    settings = load_settings(None, env={
        "SENTIFLOW_NODE__HOME": str(default_model_home),
        "SENTIFLOW_API__PORT": str(free_port()),
        "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{tmp_path / 'results.db'}",
    })
    async with open_node(settings) as node, serving(node) as client:  # loads like `sentiflow run`
        ready = (await client.get("/readyz")).json()
        assert ready["model"].startswith("sentiflow-linear")
        answers = []
        for i, (_, _, text) in enumerate(CASES):
            r = await client.post("/api/classify", json={"text": text, "request_id": f"case-{i}",
                                                         "language": "auto"})
            assert r.status_code == 200, r.text
            answers.append(r.json())
        languages_right = sum(a["language_detected"] == lang
                              for a, (lang, _, _) in zip(answers, CASES, strict=True))
        sentiment_right = sum(a["sentiment"] == label
                              for a, (_, label, _) in zip(answers, CASES, strict=True))
        for a, (lang, label, text) in zip(answers, CASES, strict=True):
            print(f"{lang} {label:8} -> {a['language_detected']} {a['sentiment']:8} "
                  f"{a['confidence']:.2f}  {text[:40]}")
        assert languages_right == len(CASES)
        # The default model is a linear n-gram model (UMSAB macro-F1 ~0.55): on unambiguous
        # posts it should still be right almost always.
        assert sentiment_right >= len(CASES) - 2, answers
        for a in answers:
            assert a["model_used"].startswith("sentiflow-linear")
            assert 0.0 <= a["confidence"] <= 1.0
            stored = (await client.get(f"/api/results/{a['request_id']}")).json()
            assert stored["sentiment"] == a["sentiment"]
            assert stored["language_detected"] == a["language_detected"]
