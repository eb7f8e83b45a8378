import hashlib

import numpy as np
import pytest

from minvert import labels
from minvert.errors import FormatError, MinvertError
from minvert.labels import (IMAGENET_INDEX, IMAGENET_INDEX_MD5, Labels, imagenet, imagenet_labels,
                            wnids)

# Indices checked in two copies of Keras's file and torchvision's list (reference section 7).
KNOWN = [(1, "n01443537", "goldfish"), (251, "n02110341", "dalmatian"), (276, "n02117135", "hyena"),
         (281, "n02123045", "tabby"), (282, "n02123159", "tiger_cat"), (292, "n02129604", "tiger"),
         (294, "n02132136", "brown_bear"), (852, "n04409515", "tennis_ball"),
         (943, "n07718472", "cucumber"), (0, "n01440764", "tench"),
         (999, "n15075141", "toilet_tissue")]


def error_of(fn, *args):
    with pytest.raises(MinvertError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_shipped_file_md5():
    assert hashlib.md5(IMAGENET_INDEX.read_bytes()).hexdigest() == IMAGENET_INDEX_MD5
    assert IMAGENET_INDEX_MD5 == "c2c37ea517e94d9795004a39431a14cb"


def test_edited_copy_is_refused(tmp_path):
    edited = tmp_path / "imagenet_class_index.json"
    edited.write_bytes(IMAGENET_INDEX.read_bytes().replace(b"studio_couch", b"sofa_studio!"))
    with pytest.raises(FormatError) as info:
        labels._load_class_index(edited)
    assert "MD5" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(MinvertError):
        labels._load_class_index(tmp_path / "missing.json")


def test_known_indices():
    names, ids = imagenet_labels(), wnids()
    assert len(names) == len(ids) == 1000 and ids == sorted(ids)
    for i, wnid, name in KNOWN:
        assert (ids[i], names[i]) == (wnid, name)
    names[0] = "changed"  # callers get copies
    assert imagenet_labels()[0] == "tench"


@pytest.mark.parametrize("query", [282, np.int64(282), "282", " 282 ", "n02123159", "N02123159",
                                   "tiger_cat", "tiger cat", "Tiger Cat", "tiger-cat", "TIGERCAT",
                                   "  tiger  cat "])
def test_lookup_variants(query):
    assert imagenet().index(query) == 282


def test_names_and_punctuation():
    lab = imagenet()
    assert lab.name(282) == "tiger_cat" and lab.display(282) == "tiger cat" and lab[292] == "tiger"
    assert lab.index("jack o lantern") == lab.index("jack-o'-lantern") == 607
    assert lab.index("Shih Tzu") == 155
    # exact text first: the dog and the sweater differ only by case
    assert lab.index("Cardigan") == 264 and lab.index("cardigan") == 474


def test_out_of_range_and_bool():
    lab = imagenet()
    assert "0..999" in error_of(lab.index, 1000)
    error_of(lab.index, "1000")
    error_of(lab.index, True)
    error_of(lab.name, -1)
    assert "n99999999" in error_of(lab.index, "n99999999")


def test_typo_suggestions():
    msg = error_of(imagenet().index, "tigr")
    assert msg.startswith("unknown class 'tigr'; closest:")
    assert "tiger" in msg and "tiger cat" in msg
    assert "brown bear" in error_of(imagenet().index, "browne_baer")
    assert "WordNet id" in error_of(imagenet().index, "qqqqqqqqqq")


@pytest.mark.parametrize("query, hits", [("crane", [(134, "n02012849"), (517, "n03126707")]),
                                         ("CRANE", [(134, "n02012849"), (517, "n03126707")]),
                                         ("maillot", [(638, "n03710637"), (639, "n03710721")])])
def test_ambiguous_names(query, hits):
    msg = error_of(imagenet().index, query)
    assert msg.startswith(f"ambiguous class {query!r}")
    for i, wnid in hits:
        assert f"{i} " in msg and wnid in msg
    assert imagenet().index(hits[1][1]) == hits[1][0]  # the wnid resolves it


def test_small_label_list():
    lab = Labels(["stripes", "checkerboard", "dots", "Dots"])
    assert len(lab) == 4 and list(lab)[:2] == ["stripes", "checkerboard"]
    assert lab.index("Checker board") == 1 and lab.index("2") == 2 and lab.index("Dots") == 3
    assert "stripes" in error_of(lab.index, "stripe-s x")
    assert "pass the index" in error_of(lab.index, "DOTS")
    error_of(lab.index, "n02123045")  # no WordNet ids here: an unknown name
    error_of(Labels, ["a", "b"], ["n1"])


def test_topk():
    lab = Labels(["a", "b_c", "d"])
    assert lab.topk([0.1, 0.7, 0.2], k=2) == [(1, "b c", 0.7), (2, "d", 0.2)]
    error_of(lab.topk, [0.1, 0.2])
