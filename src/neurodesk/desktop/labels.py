"""How category names read in the panel and the desktop menu (one place for the spelling)."""

from __future__ import annotations

ACRONYMS = {"bids": "BIDS", "em": "EM", "eeg": "EEG", "meg": "MEG", "mri": "MRI", "pet": "PET"}


def category_label(category: str) -> str:
    """Sentence case with acronyms: 'bids apps' → 'BIDS apps', 'cryo EM' → 'Cryo EM'."""
    words = [ACRONYMS.get(w.lower(), w) for w in category.split()]
    if words and words[0] == words[0].lower():
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)
