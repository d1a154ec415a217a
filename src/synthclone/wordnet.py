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
from collections import Counter
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import UserError
from .paths import atomic_write, atomic_write_text, cache_dir, data_dirs

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
            atomic_write(copy, lambda p, f=f: shutil.copyfile(f, p))
    lex = root / "lexnames"
    if not lex.is_file():
        atomic_write_text(lex, _lexnames_from_manpage())
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


def synset_for(name: str, wnid: Optional[str] = None):
    """The noun synset of a class: its WordNet id's when ``wnid`` is given, else found by name.

    By name (datasets without ids, e.g. Fashion-MNIST): the most common noun synset, ``"Ankle
    boot"`` -> ``ankle_boot.n.01``, or None. By id: :func:`from_wnid` (never a lookup by name, so
    the bird ``n02012849`` and the machine ``n03126707`` stay apart although both are "crane").
    """
    if wnid is not None:
        return from_wnid(wnid)
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


def _lookup(wnid_: str):
    """The synset of a well-formed id, or None when WordNet 3.0 has no synset at that offset."""
    wn = wordnet()  # outside the try: WordNet missing is its own error, not an unknown id
    with warnings.catch_warnings():  # nltk warns and returns None for an unknown offset
        warnings.simplefilter("ignore", UserWarning)
        try:
            return wn.synset_from_pos_and_offset(wnid_[0], int(wnid_[1:]))
        except Exception:  # nltk's WordNetError for offsets past the end of the data file
            return None


def from_wnid(wnid_: str):
    """The synset of an ImageNet-style id (``n02084071`` -> ``dog.n.01``)."""
    if not re.fullmatch(r"[nvasr]\d{8}", wnid_ or ""):
        raise UserError(f"{wnid_!r} is not a WordNet id; ids look like n02084071")
    synset = _lookup(wnid_)
    if synset is None:
        raise UserError(f"WordNet 3.0 has no synset {wnid_}; check the id (ImageNet uses WordNet 3.0 offsets)")
    return synset


def is_wnid(name: str) -> bool:
    """Whether ``name`` has the shape of an ImageNet noun id (``n`` and 8 digits)."""
    return re.fullmatch(r"n\d{8}", name or "") is not None


def _lemma(synset) -> str:
    return synset.lemmas()[0].name().replace("_", " ")


def wnid_to_name(wnid_: str) -> str:
    """Readable name of an ImageNet-style WordNet id (first lemma, spaces for underscores).

    One id on its own, so no disambiguation: name a list of classes with :func:`wnid_names`.
    """
    return _lemma(from_wnid(wnid_))


def _ancestors(synset) -> list:
    """Every hypernym (and instance hypernym) of ``synset``, nearest first.

    Breadth first, each synset's parents in name order, each ancestor once: a fixed order
    whatever the hash seed.
    """
    out, seen, level = [], {synset}, [synset]
    while level:
        parents = []
        for s in level:
            for p in sorted(s.hypernyms() + s.instance_hypernyms(), key=lambda x: x.name()):
                if p not in seen:
                    seen.add(p)
                    parents.append(p)
        out += parents
        level = parents
    return out


def _traits(synset) -> List[str]:
    """Names that may tell ``synset`` apart from others sharing its name, best first.

    Its hypernyms, nearest first; then the wholes it belongs to (holonyms: "Aberdeen" the town is
    part of "South Dakota"), its domains, and its other lemmas.
    """
    wholes = synset.part_holonyms() + synset.member_holonyms() + synset.substance_holonyms()
    domains = synset.topic_domains() + synset.region_domains() + synset.usage_domains()
    related = [_lemma(s) for group in (wholes, domains) for s in sorted(group, key=lambda x: x.name())]
    synonyms = [lemma.name().replace("_", " ") for lemma in synset.lemmas()[1:]]
    return [_lemma(a) for a in _ancestors(synset)] + related + synonyms


def _suffixes(wnids: Sequence[str], synsets: Sequence) -> List[str]:
    """A suffix per synset of a group sharing one name, distinct within the group.

    A synset's suffix is its first trait (:func:`_traits`) that is no trait of any other synset in
    the group (``crane`` the bird: "wading bird"; the machine: "lifting device"), else its id.
    Distinct: each suffix is a trait of its own synset only.
    """
    base = _lemma(synsets[0]).lower()
    traits = [_traits(s) for s in synsets]
    out = []
    for i, own in enumerate(traits):
        others = {n.lower() for j, names in enumerate(traits) if j != i for n in names}
        unique = [n for n in own if n.lower() != base and n.lower() not in others]
        out.append(unique[0] if unique else wnids[i])
    return out


def _synset_or_fix(wnid_: str):
    synset = _lookup(wnid_) if re.fullmatch(r"[nvasr]\d{8}", wnid_ or "") else None
    if synset is None:
        raise UserError(f"WordNet 3.0 has no synset {wnid_!r} (ids are WordNet 3.0 offsets such as n02084071); "
                        f'check the id, or name its class in a class-name map JSON, {{"{wnid_}": "<class name>"}}')
    return synset


def wnid_names(wnids: Sequence[str]) -> List[str]:
    """One display name per WordNet id, from the id's own synset, unique case-insensitively.

    A name is the synset's first lemma with spaces for underscores (``n02084071`` -> ``"dog"``).
    Ids whose names coincide (ignoring case) each get a suffix in parentheses: the name of the
    synset's nearest hypernym that is no hypernym of the others sharing the name (ImageNet's
    ``n02012849`` and ``n03126707`` -> ``"crane (wading bird)"``, ``"crane (lifting device)"``);
    failing that, a whole it is part of, a domain or a synonym the others lack; failing all, the
    id itself. A suffix belongs to its own synset only, so names are always unique.

    Raises :class:`UserError` for an id WordNet 3.0 lacks (the fix: a class-name map JSON) or an
    id listed twice.
    """
    wnids = list(wnids)
    twice = sorted(w for w, n in Counter(wnids).items() if n > 1)
    if twice:
        raise UserError(f"WordNet ids {twice} are listed twice; each class needs its own id")
    synsets = [_synset_or_fix(w) for w in wnids]
    names = [_lemma(s) for s in synsets]
    groups: Dict[str, List[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name.lower(), []).append(i)
    out = list(names)
    for members in groups.values():
        if len(members) > 1:
            suffixes = _suffixes([wnids[i] for i in members], [synsets[i] for i in members])
            for i, suffix in zip(members, suffixes):
                out[i] = f"{names[i]} ({suffix})"
    # WordNet's noun lemmas hold no parentheses, so a suffixed name cannot meet a plain one.
    assert len({n.lower() for n in out}) == len(out), out
    return out


def _known(wnid_: str) -> bool:
    # A mapped folder's id only refines its prompts, so a class-name map works without WordNet
    # (and for ids WordNet lacks): such a folder simply carries no id.
    try:
        from_wnid(wnid_)
    except UserError:
        return False
    return True


def folder_classes(folders: Sequence[str],
                   names: Optional[Mapping[str, str]] = None) -> Tuple[List[str], List[Optional[str]]]:
    """Class names and WordNet ids of ImageFolder class folders (e.g. ImageNet's ``n01440764``).

    A folder in ``names`` (a class-name map) gets that name; an unmapped WordNet-id folder is
    named by :func:`wnid_names` (over all such folders at once, so shared names are told apart);
    any other folder keeps its own name. A folder's id is its WordNet id when WordNet knows it,
    else None; pass the ids to :func:`synthclone.prompts.make_prompts` as ``class_ids``.

    Returns ``(class names, class ids)``, one of each per folder. Raises :class:`UserError` when
    two folders end up with the same name (ignoring case).
    """
    names = dict(names or {})
    unnamed = [f for f in folders if f not in names and is_wnid(f)]
    named = dict(zip(unnamed, wnid_names(unnamed)))
    out = [names.get(f, named.get(f, f)) for f in folders]
    first: Dict[str, str] = {}
    for folder, name in zip(folders, out):
        if name.lower() in first:
            raise UserError(f"class folders {first[name.lower()]!r} and {folder!r} are both named {name!r}; "
                            "name them apart in a class-name map JSON")
        first[name.lower()] = folder
    return out, [f if is_wnid(f) and (f in named or _known(f)) else None for f in folders]


def describe(name: str, wnid: Optional[str] = None) -> Optional[dict]:
    """Definition, synonyms and hypernym names of a class, or None when WordNet lacks it.

    The synset is the id's when ``wnid`` is given (see :func:`synset_for`), else found by name.
    """
    s = synset_for(name, wnid)
    if s is None:
        return None
    return {
        "synset": s.name(),
        "definition": s.definition(),
        "synonyms": [l.name().replace("_", " ") for l in s.lemmas()],
        "hypernyms": [h.lemmas()[0].name().replace("_", " ") for h in s.hypernyms()],
    }
