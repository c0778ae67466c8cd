"""A sentence for people, kept with its template and words so that a page can translate it.

The wire imports no Flask: it writes its sentences in English and marks their templates with
`N_` for the catalogs; the web part looks each template up in the page's language.
"""

from portal.wire.texts import N_

__all__ = ["N_", "Sentence"]


class Sentence(str):
    """The sentence in English, its `template` and `words` kept; a word may be a Sentence too."""

    template: str
    words: dict[str, str]

    def __new__(cls, template: str, **words: object) -> "Sentence":
        kept = {k: v if isinstance(v, Sentence) else str(v) for k, v in words.items()}
        sentence = super().__new__(cls, template % kept)
        sentence.template, sentence.words = template, kept
        return sentence
