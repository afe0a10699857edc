"""The Spanish-English Bible pairs: markup stripped from real verses of both modules
(footnotes, titles, milestones, the Reina-Valera's capitals), the split by whole books,
the misaligned chapters left out everywhere and the ill-matched lengths out of training."""

from rnnkit.data.bible import DEV_BOOKS, TEST_BOOKS, clean, pairs

SPANISH_GEN = ('<w lemma="strong:H7225">EN el principio</w> <w lemma="strong:H1254">crió</w> '
               '<w lemma="strong:H0430">Dios</w> <w lemma="strong:H8064">los cielos</w> '
               '<w lemma="strong:H0776">y la tierra</w>. ')
ENGLISH_GEN = ('<w lemma="strong:H7225">In the beginning</w>, <w lemma="strong:H0430">God</w><note placement="foot">'
               '<reference type="annotateRef">1:1 </reference>The Hebrew word rendered “God” is “אֱלֹהִ֑ים”.</note> '
               '<w lemma="strong:H1254">created</w> the heavens and the earth.')
ENGLISH_PSALM = ('<div type="x-milestone" subType="x-preverse" sID="pv2"/><title canonical="true" type="psalm">A Psalm '
                 'by David, when he fled from Absalom his son.</title> <lg sID="gen1"/> <l level="1" sID="x1"/>Yahweh, '
                 'how my adversaries have increased!<l eID="x1" level="1"/>')


def test_markup_is_stripped_from_real_verses():
    assert clean(SPANISH_GEN, capitals=True) == "En el principio crió Dios los cielos y la tierra."
    assert clean(ENGLISH_GEN) == "In the beginning, God created the heavens and the earth."
    assert clean(ENGLISH_PSALM) == ("A Psalm by David, when he fled from Absalom his son. Yahweh, how my adversaries "
                                    "have increased!")
    assert clean("<w>Y ACONTECIÓ en</w> los días de DIOS &amp; más", capitals=True) == \
        "Y aconteció en los días de DIOS & más"


def test_the_split_is_by_book_and_misaligned_verses_are_left_out():
    spanish = {"Gen.1.1": "uno dos", "Gen.1.2": "tres", f"{TEST_BOOKS[0]}.1.1": "a b c d e f",
               f"{DEV_BOOKS[0]}.2.3": "cuatro", "Num.12.1": "cinco", "Gen.1.3": "x" * 40}
    english = {"Gen.1.1": "one two", "Gen.1.2": "three", f"{TEST_BOOKS[0]}.1.1": "a",
               f"{DEV_BOOKS[0]}.2.3": "four", "Num.12.1": "five", "Gen.1.3": "y"}
    out = pairs(spanish, english)
    assert [k for k, _, _ in out["train"]] == ["Gen.1.1", "Gen.1.2"]  # Num 12 shifted, Gen 1:3 ill-matched
    assert [k for k, _, _ in out["test"]] == [f"{TEST_BOOKS[0]}.1.1"]  # the length rule is for training only
    assert [k for k, _, _ in out["dev"]] == [f"{DEV_BOOKS[0]}.2.3"]
