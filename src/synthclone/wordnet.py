"""WordNet from the Debian package ``wordnet-base``, read with nltk's maintained reader.

Debian's dictionary folder lacks the small ``lexnames`` file that nltk's reader opens. Its 45
lines are listed in the package's own ``lexnames(5WN)`` man page, so :func:`wordnet` builds a
dictionary folder in synthclone's cache with copies of Debian's files plus a ``lexnames`` written
from that page, and opens the reader on it directly (nltk otherwise reads only roots listed in
``nltk.data.path``).
"""

from __future__ import annotations

import functools
import gzip
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import List, Optional

from .errors import UserError
from .paths import cache_dir, data_dirs

DEBIAN_PACKAGE = "wordnet-base"
HOW_TO_GET = f"install it with 'apt-get install {DEBIAN_PACKAGE}', or set WNHOME to a WordNet 3.0 folder holding dict/"
_CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def _dpkg_files(package: str) -> List[str]:
    if shutil.which("dpkg") is None:
        return []
    try:
        return subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []


def find_dict() -> Path:
    """The folder holding WordNet's ``data.noun`` / ``index.noun`` files."""
    candidates = []
    if os.environ.get("WNHOME"):
        candidates += [Path(os.environ["WNHOME"]) / "dict", Path(os.environ["WNHOME"])]
    candidates += [Path(p).parent for p in _dpkg_files(DEBIAN_PACKAGE) if p.endswith("/data.noun")]
    candidates += [d / "wordnet" for d in data_dirs()]
    for folder in candidates:
        if (folder / "data.noun").is_file() and (folder / "index.noun").is_file():
            return folder
    raise UserError(f"WordNet not found; {HOW_TO_GET}")


def _lexnames_from_manpage() -> str:
    pages = [Path(p) for p in _dpkg_files(DEBIAN_PACKAGE) if "lexnames.5" in p]
    pages += [Path("/usr/share/man/man5/lexnames.5WN.gz")]
    for page in pages:
        if page.is_file():
            opener = gzip.open if page.suffix == ".gz" else open
            with opener(page, "rt", errors="replace") as fh:
                text = fh.read()
            rows = re.findall(r"^(\d\d)\t(\S+)\s", text, flags=re.M)
            if len(rows) >= 45:
                return "".join(f"{num}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for num, name in rows)
    raise UserError(f"WordNet's lexnames(5WN) man page not found to rebuild the missing lexnames file; {HOW_TO_GET}")


def _prepared_root() -> Path:
    src = find_dict()
    if (src / "lexnames").is_file():
        return src
    root = cache_dir() / "wordnet-dict"
    root.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        copy = root / f.name
        # nltk refuses symlinks whose targets leave the root, so the files are copied (once, atomically).
        if f.is_file() and not copy.is_file():
            tmp = root / f".{f.name}.{os.getpid()}"
            shutil.copyfile(f, tmp)
            tmp.replace(copy)
    lex = root / "lexnames"
    if not lex.is_file():
        tmp = root / f".lexnames.{os.getpid()}"
        tmp.write_text(_lexnames_from_manpage())
        tmp.replace(lex)
    return root


@functools.lru_cache(maxsize=1)
def wordnet():
    """nltk's ``WordNetCorpusReader`` over the Debian WordNet 3.0 files."""
    try:
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:  # nltk is a core dependency; this only guards broken installs
        raise UserError("nltk is not installed; reinstall synthclone (pip install -e .)") from None
    import nltk.data

    root = _prepared_root()
    # nltk refuses roots (and symlink targets) outside nltk.data.path.
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    class DebianWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # The mapping to nltk's downloadable "wordnet" corpus serves only the multilingual
            # functions, which synthclone does not use; computing it would look for that download.
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available": we use none
        warnings.simplefilter("ignore", UserWarning)
        return DebianWordNet(str(root), None)


def synset_for(name: str):
    """The most common noun synset for a class name (``"Ankle boot"`` -> ``ankle_boot.n.01``), or None."""
    wn = wordnet()
    parts = name.split("/")
    spaced = [p.replace("-", " ") for p in parts]
    # whole name, each "/"-alternative as written and with hyphens as spaces, then each
    # alternative's head noun ("Ankle boot" -> "boot")
    candidates = [name] + parts + spaced + [p.split()[-1] for p in spaced if p.split()]
    for cand in candidates:
        key = cand.strip().lower().replace(" ", "_")
        if not key:
            continue
        found = wn.synsets(key, pos="n")
        if found:
            return found[0]
    return None


def wnid(synset) -> str:
    """ImageNet-style id of a noun synset (``n02084071``)."""
    return f"{synset.pos()}{synset.offset():08d}"


def from_wnid(wnid_: str):
    """The synset of an ImageNet-style id (``n02084071`` -> ``dog.n.01``)."""
    if not re.fullmatch(r"[nvasr]\d{8}", wnid_ or ""):
        raise UserError(f"{wnid_!r} is not a WordNet id; ids look like n02084071")
    with warnings.catch_warnings():  # nltk warns and returns None for an unknown offset
        warnings.simplefilter("ignore", UserWarning)
        try:
            synset = wordnet().synset_from_pos_and_offset(wnid_[0], int(wnid_[1:]))
        except Exception:  # nltk's WordNetError for offsets past the end of the data file
            synset = None
    if synset is None:
        raise UserError(f"WordNet 3.0 has no synset {wnid_}; check the id (ImageNet uses WordNet 3.0 offsets)")
    return synset


def wnid_to_name(wnid_: str) -> str:
    """Readable name of an ImageNet-style WordNet id (first lemma, spaces for underscores)."""
    return from_wnid(wnid_).lemmas()[0].name().replace("_", " ")


def describe(name: str) -> Optional[dict]:
    """Definition, synonyms and hypernym names of a class name, or None when WordNet lacks it."""
    s = synset_for(name)
    if s is None:
        return None
    return {
        "synset": s.name(),
        "definition": s.definition(),
        "synonyms": [l.name().replace("_", " ") for l in s.lemmas()],
        "hypernyms": [h.lemmas()[0].name().replace("_", " ") for h in s.hypernyms()],
    }
