"""Class names: the 1000 ImageNet (ILSVRC-2012) classes, or any small list, and lookup by
index, WordNet id or forgiving name.

The ImageNet list is Keras's ``imagenet_class_index.json`` (index -> [wnid, label]), shipped in
``minvert/data`` and checked against its published MD5 every time it is read, because edited copies
circulate. Names keep the Keras text (``tiger_cat``, so they match ``decode_predictions``);
:meth:`Labels.display` gives the spaced form (``tiger cat``) used by torchvision.
"""
import difflib
import functools
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .errors import FormatError, MinvertError

IMAGENET_INDEX = Path(__file__).parent / "data" / "imagenet_class_index.json"
IMAGENET_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
_WNID = re.compile(r"[nN]\d{8}")


def _load_class_index(path=IMAGENET_INDEX, md5=IMAGENET_INDEX_MD5):
    """-> (names, wnids) from an imagenet_class_index.json whose MD5 must be ``md5``."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise MinvertError(f"cannot read the ImageNet class list {path} ({e.strerror}); "
                           "reinstall minvert") from None
    digest = hashlib.md5(data).hexdigest()
    if digest != md5:
        raise FormatError(f"{path} has MD5 {digest}, expected {md5}: the class list was edited or "
                          "corrupted; restore it from the minvert package")
    index = json.loads(data)
    entries = [index[str(i)] for i in range(len(index))]
    return [name for _, name in entries], [wnid for wnid, _ in entries]


@functools.lru_cache(maxsize=None)
def _imagenet():
    return _load_class_index()


def imagenet_labels():
    """The 1000 ImageNet names in index order, Keras text (``tiger_cat``, ``Persian_cat``)."""
    return list(_imagenet()[0])


def wnids():
    """The 1000 WordNet ids in index order (``n01440764`` = 0 ... ``n15075141`` = 999)."""
    return list(_imagenet()[1])


def imagenet():
    """:class:`Labels` for ImageNet, with WordNet ids."""
    names, ids = _imagenet()
    return Labels(names, ids)


def _key(name):
    """Lookup form: lower case, letters and digits only ("Tiger-Cat", "tiger_cat" -> "tigercat")."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


class Labels:
    """An ordered list of class names (optionally with WordNet ids) and lookups into it.

    ``index`` accepts an int, a numeric string, a WordNet id or a name. A name matches exactly first
    (so "Cardigan", the dog, 264, and "cardigan", the sweater, 474, stay apart), then ignoring case,
    spaces, underscores, hyphens and other punctuation.
    """

    def __init__(self, names, wnids=None):
        self.names = [str(n) for n in names]
        if wnids is not None and len(wnids) != len(self.names):
            raise MinvertError(f"{len(self.names)} class names but {len(wnids)} WordNet ids")
        self.wnids = None if wnids is None else [str(w) for w in wnids]
        self._by_key = {}
        for i, n in enumerate(self.names):
            self._by_key.setdefault(_key(n), []).append(i)

    def __len__(self):
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __getitem__(self, i):
        return self.name(i)

    def __repr__(self):
        head = ", ".join(self.names[:3])
        return f"Labels({len(self)} classes: {head}{', ...' if len(self) > 3 else ''})"

    def name(self, i):
        """The stored name of class i (Keras text for ImageNet)."""
        return self.names[self._check(i)]

    def display(self, i):
        """Class i's name for people: underscores become spaces ("tiger cat")."""
        return self.name(i).replace("_", " ")

    def _check(self, i):
        i = int(i)
        if not 0 <= i < len(self):
            raise MinvertError(f"class index {i} out of range; use 0..{len(self) - 1}")
        return i

    def _describe(self, i):
        return f"{i} {self.display(i)}" + (f" ({self.wnids[i]})" if self.wnids else "")

    def index(self, query):
        """Class index of an int, numeric string, WordNet id ("n02123045") or name ("tiger cat")."""
        if isinstance(query, (bool, np.bool_)):
            raise MinvertError(f"class {query!r} is a boolean; "
                               "give an index, a name or a WordNet id")
        if isinstance(query, (int, np.integer)):
            return self._check(query)
        q = str(query).strip()
        if re.fullmatch(r"\d+", q):
            return self._check(q)
        if _WNID.fullmatch(q) and self.wnids is not None:
            try:
                return self.wnids.index(q.lower())
            except ValueError:
                raise MinvertError(f"WordNet id {q} is not one of "
                                   f"these {len(self)} classes") from None
        exact = [i for i, n in enumerate(self.names) if q in (n, n.replace("_", " "))]
        if len(exact) == 1:
            return exact[0]
        hits = exact or self._by_key.get(_key(q), [])
        if len(hits) == 1:
            return hits[0]
        if hits:
            choices = ", ".join(self._describe(i) for i in hits)
            how = "index or the WordNet id" if self.wnids else "index"
            raise MinvertError(f"ambiguous class {q!r}: {choices}; pass the {how}")
        close = self._suggest(q)
        if close:
            names = ", ".join(self.display(i) for i in close)
            raise MinvertError(f"unknown class {q!r}; closest: {names}?")
        some = f" ({', '.join(self.names)})" if len(self) <= 40 else ""
        raise MinvertError(f"unknown class {q!r}; give a class name{some}, an index 0..{len(self) - 1}"
                           + (" or a WordNet id (n02123045)" if self.wnids else ""))

    def _suggest(self, q, n=8):
        """Classes to offer for an unknown name: those with it as a word ("cat": tiger cat,
        Persian cat), then those containing it ("wildcat"), then the closest spellings."""
        key = _key(q)
        words = [i for i, name in enumerate(self.names) if key and key in
                 re.split(r"[^0-9a-z]+", name.lower())]
        inside = [i for i, name in enumerate(self.names) if key and key in _key(name)]
        spelled = [self._by_key[k][0] for k in
                   difflib.get_close_matches(key, list(self._by_key), n=5, cutoff=0.6)]
        return list(dict.fromkeys(words + inside + spelled))[:n]

    def topk(self, scores, k=5):
        """Scores (K,) -> [(index, display name, score)] for the k highest, best first."""
        scores = to_numpy(scores).astype(np.float64).reshape(-1)
        if scores.shape[0] != len(self):
            raise MinvertError(f"{scores.shape[0]} scores for {len(self)} classes")
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), self.display(i), float(scores[i])) for i in order]


def net_labels(net):
    """The network's classes as a :class:`minvert.labels.Labels` (ImageNet gets WordNet ids)."""
    if not net.labels:
        raise MinvertError("this network has no class labels")
    return imagenet() if list(net.labels) == imagenet_labels() else Labels(net.labels)
