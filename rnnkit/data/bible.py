"""Verse-aligned Spanish-English Bibles for translation: the Reina-Valera 1909 (Debian's
``sword-text-sparv``) and the World English Bible (``sword-text-web``), both public domain,
read with pysword and paired by (book, chapter, verse).

The split is **by whole books**, so no verse has its neighbours on the other side:
:data:`TEST_BOOKS` and :data:`DEV_BOOKS` (narrative, letters and wisdom; no book with a
near-copy elsewhere, such as a synoptic gospel), the rest for training. The markup is
stripped (:func:`clean`: footnotes and section titles dropped, the Reina-Valera's
capitalised first words written normally). The chapters where the two versifications
disagree (:data:`SHIFTED`) are left out everywhere, and training pairs whose lengths differ
too much (``|log(len_es / len_en)| >= 0.7``, a sign of a misaligned verse) too.
"""

from __future__ import annotations

import functools
import html
import math
import re
import subprocess
import tempfile
from pathlib import Path

SPANISH, ENGLISH = "spaRV1909eb", "engWEB2015eb"
PACKAGES = {SPANISH: "sword-text-sparv", ENGLISH: "sword-text-web"}
TEST_BOOKS = ("John", "Heb", "Eccl", "Ruth")
DEV_BOOKS = ("Esth", "Jas", "Phil", "Jonah", "Nah", "1Pet")
SHIFTED = re.compile(r"^(Num\.(12|13|29|30)|1Sam\.(23|24)|2Sam\.20|2Chr\.33|Job\.(35|38|39|40|41)|Hos\.(11|12)|"
                     r"Jonah\.(1|2)|2Cor\.13|Rom\.(14|16))\.")
MAX_LOG_RATIO = 0.7

_DROP = re.compile(r"<(note|speaker)\b[^>]*>.*?</\1>", re.S)  # footnotes (with their references), speakers
_TITLE = re.compile(r"<title\b[^>]*type=\"main\"[^>]*>.*?</title>", re.S)  # section titles (psalm titles stay)
_EMPTY = re.compile(r"<[^>]*/>")  # milestones: <div .../> <l .../> <lb/> <chapter .../>
_TAG = re.compile(r"</?[A-Za-z][^>]*>")  # other tags: their text stays
_CAPS = re.compile(r"\b[A-ZÁÉÍÓÚÑÜ]{2,}\b")  # the Reina-Valera's capitals: "Y ACONTECIÓ", "EN el principio"


def clean(markup: str, capitals: bool = False) -> str:
    """A verse's OSIS markup -> its plain text; with ``capitals``, a chapter's opening word in
    capitals (among the first three words) is written normally."""
    text = _EMPTY.sub(" ", _TITLE.sub(" ", _DROP.sub(" ", markup)))
    text = html.unescape(_TAG.sub("", text))
    text = re.sub(r"\s+([,.;:!?»”’)])", r"\1", " ".join(text.split()))
    if capitals:
        first = _CAPS.search(text)
        if first and len(text[:first.start()].split()) < 3:
            word = first.group().capitalize() if not re.search(r"\w", text[:first.start()]) else first.group().lower()
            text = text[:first.start()] + word + text[first.end():]
    return text


def read_verses(sword: Path, module: str) -> dict[str, str]:
    """``Book.chapter.verse`` -> raw markup, for every verse of ``module`` under the SWORD
    directory ``sword`` (empty verses left out)."""
    from pysword.modules import SwordModules
    modules = SwordModules(str(sword))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    if hasattr(bible, "_decompressed_text"):  # pysword inflates a whole block per verse: keep the last few
        bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            for chapter in range(1, len(book.chapter_lengths) + 1):
                texts = bible.get_iter(books=book.name, chapters=chapter, clean=False)
                for verse, text in enumerate(texts, 1):
                    if text.strip():
                        verses[f"{book.osis_name}.{chapter}.{verse}"] = text
    return verses


def sword_directory(into: Path) -> Path:
    """A SWORD directory holding both modules: the installed one, or the Debian packages
    downloaded and unpacked into ``into``."""
    installed = Path("/usr/share/sword")
    if all((installed / "mods.d" / f"{m.lower()}.conf").exists() for m in PACKAGES):
        return installed
    for package in PACKAGES.values():
        got = subprocess.run(["apt-get", "download", package], cwd=into, capture_output=True, text=True)
        debs = list(into.glob(f"{package}_*.deb"))
        if got.returncode or not debs:
            raise OSError(f"apt-get download {package} failed: {got.stderr.strip()[-300:]}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(into)], check=True)
    return into / "usr" / "share" / "sword"


def split_of(key: str) -> str:
    book = key.split(".")[0]
    return "test" if book in TEST_BOOKS else "dev" if book in DEV_BOOKS else "train"


def pairs(spanish: dict[str, str], english: dict[str, str]) -> dict[str, list[tuple[str, str, str]]]:
    """(key, Spanish, English) of every verse both hold, by split, in the Bible's order."""
    out: dict[str, list[tuple[str, str, str]]] = {"train": [], "dev": [], "test": []}
    for key, raw in spanish.items():
        if key not in english or SHIFTED.match(key):
            continue
        es, en = clean(raw, capitals=True), clean(english[key])
        if not es or not en:
            continue
        split = split_of(key)
        if split == "train" and abs(math.log(len(es) / len(en))) >= MAX_LOG_RATIO:
            continue
        out[split].append((key, es, en))
    return out


def prepare(out: Path) -> dict[str, Path]:
    """Write ``SPLIT.tsv`` (``Spanish<TAB>English``) and ``SPLIT.keys`` (each line's verse) under ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        sword = sword_directory(Path(tmp))
        spanish, english = read_verses(sword, SPANISH), read_verses(sword, ENGLISH)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, rows in pairs(spanish, english).items():
        path = out / f"{split}.tsv"
        path.write_text("".join(f"{es}\t{en}\n" for _, es, en in rows), encoding="utf-8")
        (out / f"{split}.keys").write_text("".join(f"{key}\n" for key, _, _ in rows), encoding="utf-8")
        paths[split] = path
    return paths
