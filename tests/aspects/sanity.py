"""A multilingual sanity set written for these tests: three sentences per language, each with
two aspects of opposite polarity, and a tiny polarity lexicon per language for a test backend
(so the set checks the aspect step's mechanics -- extraction, spans, one context per aspect --
independently of any trained model's accuracy).

Each case: (language, text, [(term as it appears, category, sentiment), ...]).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiflow.models.base import Probabilities

Case = tuple[str, str, list[tuple[str, str, str]]]

SANITY: list[Case] = [
    ("en", "The product is great but shipping took forever.",
     [("product", "product quality", "positive"), ("shipping", "shipping", "negative")]),
    ("en", "Terrible customer service, although the price was excellent.",
     [("customer service", "customer service", "negative"), ("price", "price", "positive")]),
    ("en", "The battery life is amazing, but the screen is awful.",
     [("battery life", "battery", "positive"), ("screen", "display", "negative")]),
    ("de", "Das Produkt ist super, aber der Versand war katastrophal.",
     [("Produkt", "product quality", "positive"), ("Versand", "shipping", "negative")]),
    ("de", "Der Preis ist schlecht, doch das Essen war lecker.",
     [("Preis", "price", "negative"), ("Essen", "food", "positive")]),
    ("de", "Der Akku ist hervorragend, aber der Bildschirm ist schlecht.",
     [("Akku", "battery", "positive"), ("Bildschirm", "display", "negative")]),
    ("fr", "Le produit est excellent mais la livraison était horrible.",
     [("produit", "product quality", "positive"), ("livraison", "shipping", "negative")]),
    ("fr", "Le prix est mauvais, cependant le service est génial.",
     [("prix", "price", "negative"), ("service", "customer service", "positive")]),
    ("fr", "La batterie est excellente mais l'écran est horrible.",
     [("batterie", "battery", "positive"), ("écran", "display", "negative")]),
    ("es", "El producto es excelente, pero el envío fue horrible.",
     [("producto", "product quality", "positive"), ("envío", "shipping", "negative")]),
    ("es", "La comida estaba deliciosa pero el servicio fue malo.",
     [("comida", "food", "positive"), ("servicio", "customer service", "negative")]),
    ("es", "El precio es malo, aunque la pantalla es excelente.",
     [("precio", "price", "negative"), ("pantalla", "display", "positive")]),
    ("it", "Il prodotto è ottimo ma la spedizione è stata pessima.",
     [("prodotto", "product quality", "positive"), ("spedizione", "shipping", "negative")]),
    ("it", "Il cibo era ottimo, però il servizio era pessimo.",
     [("cibo", "food", "positive"), ("servizio", "customer service", "negative")]),
    ("it", "Il prezzo è pessimo ma la batteria è ottima.",
     [("prezzo", "price", "negative"), ("batteria", "battery", "positive")]),
    ("pt", "O produto é ótimo, mas a entrega foi péssima.",
     [("produto", "product quality", "positive"), ("entrega", "shipping", "negative")]),
    ("pt", "A comida é ótima mas o atendimento foi péssimo.",
     [("comida", "food", "positive"), ("atendimento", "customer service", "negative")]),
    ("pt", "O preço é péssimo, mas a bateria é ótima.",
     [("preço", "price", "negative"), ("bateria", "battery", "positive")]),
    ("id", "Produknya bagus tapi pengirimannya lambat sekali.",
     [("Produknya", "product quality", "positive"), ("pengirimannya", "shipping", "negative")]),
    ("id", "Harga mahal, tetapi pelayanan sangat bagus.",
     [("Harga", "price", "negative"), ("pelayanan", "customer service", "positive")]),
    ("id", "Makanan enak tapi suasana buruk.",
     [("Makanan", "food", "positive"), ("suasana", "ambience", "negative")]),
    ("ms", "Produk ini bagus tetapi penghantaran sangat lambat.",
     [("Produk", "product quality", "positive"), ("penghantaran", "shipping", "negative")]),
    ("ms", "Harga mahal tetapi perkhidmatan sangat bagus.",
     [("Harga", "price", "negative"), ("perkhidmatan", "customer service", "positive")]),
    ("ms", "Makanan sedap tapi suasana teruk.",
     [("Makanan", "food", "positive"), ("suasana", "ambience", "negative")]),
    ("ar", "المنتج ممتاز لكن الشحن سيء جدا",
     [("منتج", "product quality", "positive"), ("شحن", "shipping", "negative")]),
    ("ar", "السعر سيء ولكن الخدمة ممتازة",
     [("سعر", "price", "negative"), ("خدمة", "customer service", "positive")]),
    ("ar", "الطعام لذيذ لكن الجو سيء",
     [("طعام", "food", "positive"), ("جو", "ambience", "negative")]),
    ("hi", "उत्पाद बहुत अच्छा है लेकिन डिलीवरी बहुत खराब थी",
     [("उत्पाद", "product quality", "positive"), ("डिलीवरी", "shipping", "negative")]),
    ("hi", "कीमत खराब है लेकिन सेवा अच्छी है",
     [("कीमत", "price", "negative"), ("सेवा", "customer service", "positive")]),
    ("hi", "खाना अच्छा था पर माहौल खराब था",
     [("खाना", "food", "positive"), ("माहौल", "ambience", "negative")]),
    ("ja", "商品は良いが、配送は最悪だった。",
     [("商品", "product quality", "positive"), ("配送", "shipping", "negative")]),
    ("ja", "値段は最悪だけど、料理は良い。",
     [("値段", "price", "negative"), ("料理", "food", "positive")]),
    ("ja", "画面は良いが、バッテリーは最悪だ。",
     [("画面", "display", "positive"), ("バッテリー", "battery", "negative")]),
    ("zh", "产品很好，但是物流太差了。",
     [("产品", "product quality", "positive"), ("物流", "shipping", "negative")]),
    ("zh", "价格很差，不过服务很好。",
     [("价格", "price", "negative"), ("服务", "customer service", "positive")]),
    ("zh", "屏幕很好，但是电池太差。",
     [("屏幕", "display", "positive"), ("电池", "battery", "negative")]),
]

#: Polarity words per language for :class:`PolarityWordsBackend`.
POLARITY_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (("great", "excellent", "amazing"), ("forever", "terrible", "awful")),
    "de": (("super", "lecker", "hervorragend"), ("katastrophal", "schlecht")),
    "fr": (("excellent", "génial"), ("horrible", "mauvais")),
    "es": (("excelente", "deliciosa"), ("horrible", "malo")),
    "it": (("ottim",), ("pessim",)),
    "pt": (("ótim",), ("péssim",)),
    "id": (("bagus", "enak"), ("lambat", "mahal", "buruk")),
    "ms": (("bagus", "sedap"), ("lambat", "mahal", "teruk")),
    "ar": (("ممتاز", "لذيذ"), ("سيء",)),
    "hi": (("अच्छा", "अच्छी"), ("खराब",)),
    "ja": (("良い",), ("最悪",)),
    "zh": (("很好",), ("差",)),
}


class PolarityWordsBackend:
    """A SentimentBackend that counts the per-language words above (all languages at once)."""

    name = "polarity-words"
    version = "t1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, text in enumerate(texts):
            lower = text.lower()
            pos = sum(w in lower for p, _ in POLARITY_WORDS.values() for w in p)
            neg = sum(w in lower for _, n in POLARITY_WORDS.values() for w in n)
            out[i] = (0.9, 0.05, 0.05) if neg > pos else (0.05, 0.05, 0.9) if pos > neg else \
                (0.2, 0.6, 0.2)
        return out
