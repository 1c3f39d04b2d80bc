"""split_words on languages written without spaces (Chinese, Japanese) and with them (Korean), and character
spans of Chinese span-annotated corpora (CLUENER2020) turned into word tags."""

import random

import pytest
import regex
from tokenizers.normalizers import BertNormalizer

from nertune.data.spans import tag_words_from_spans
from nertune.data.words import split_words


def words_of(text: str) -> list[str]:
    split = split_words(text)
    assert all(text[start:end] == word for word, start, end in split)
    return [word for word, _, _ in split]


@pytest.mark.parametrize(
    "text, words",
    [
        # Chinese: one word per ideograph; Latin letters and digits stay runs; fullwidth punctuation one per mark.
        (
            "我在玩DOTA2和CSOL，花了600000元。",
            ["我", "在", "玩", "DOTA2", "和", "CSOL", "，", "花", "了", "600000", "元", "。"],
        ),
        ("习近平在北京会见了美国总统拜登", list("习近平在北京会见了美国总统拜登")),
        (
            "“你好！”他问：（真的？）《三体》、1,000万",
            [
                "“",
                "你",
                "好",
                "！",
                "”",
                "他",
                "问",
                "：",
                "（",
                "真",
                "的",
                "？",
                "）",
                "《",
                "三",
                "体",
                "》",
                "、",
                "1,000",
                "万",
            ],
        ),
        ("iPhone 15 Pro在中国卖3.5万元", ["iPhone", "15", "Pro", "在", "中", "国", "卖", "3.5", "万", "元"]),
        ("好……真的！！", ["好", "……", "真", "的", "！！"]),  # a run of one mark, as "..." in English
        # A URL or e-mail address written without spaces ends where the Chinese text starts again.
        (
            "详见http://t.cn/A6x，或写信到ab@c.cn咨询",
            ["详", "见", "http://t.cn/A6x", "，", "或", "写", "信", "到", "ab@c.cn", "咨", "询"],
        ),
        ("@张三 #北京#", ["@", "张", "三", "#", "北", "京", "#"]),  # ideographs are words even after @ or #
        # Japanese: kanji and kana are one word each (also katakana with the prolonged sound mark).
        ("東京タワーに行きました。", ["東", "京", "タ", "ワ", "ー", "に", "行", "き", "ま", "し", "た", "。"]),
        ("ソニーの株価は3,000円", ["ソ", "ニ", "ー", "の", "株", "価", "は", "3,000", "円"]),
        ("か\u3099ｶﾞ葛\U000e0100", ["か\u3099", "ｶﾞ", "葛\U000e0100"]),  # voiced marks, variation selector stay
        # Korean is written with spaces: Hangul words are not split into syllables; hanja are ideographs.
        ("삼성전자는 서울에 있다.", ["삼성전자는", "서울에", "있다", "."]),
        ("大韓民國 헌법", ["大", "韓", "民", "國", "헌법"]),
        # Thai has no spaces and no per-character convention: a run stays one word.
        ("กรุงเทพมหานคร สวยมาก", ["กรุงเทพมหานคร", "สวยมาก"]),
        # Extension blocks B and G, compatibility ideographs (BMP and supplement), a radical.
        (
            "\U00020000\U00030000\uf900\U0002f800\u2e80a",
            ["\U00020000", "\U00030000", "\uf900", "\U0002f800", "\u2e80", "a"],
        ),
    ],
)
def test_split_words_without_spaces(text, words):
    assert words_of(text) == words


def test_every_character_bert_splits_as_chinese_is_a_word():
    # bert-base-chinese's fast tokenizer puts spaces around these characters (handle_chinese_chars).
    normalizer = BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    chinese = [
        chr(cp)
        for cp in range(0x3000, 0x32400)
        if not 0xD800 <= cp < 0xE000
        and normalizer.normalize_str(chr(cp)) == f" {chr(cp)} "
        and not regex.match(r"\p{Cn}", chr(cp))
    ]  # unassigned code points have no script
    assert len(chinese) > 80_000
    text = "".join(chinese)
    assert words_of(text) == chinese
    assert words_of("x".join(chinese[::997])) == [w for c in chinese[::997] for w in (c, "x")][:-1]


def test_offsets_exact_on_random_cjk_and_latin_text():
    alphabet = list("中文字北京東タワーかな한국어abcXYZ019 ,.'-@#:/\t\n，。！？、：；“”（）《》…") + [
        "\U00020000",
        "\uf900",
        "\u3099",
        "\U000e0100",
        "\u200b",
        "\u00a0",
        "😀",
        "ｶ",
        "ﾞ",
    ]
    cjk = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}ー]")
    rng = random.Random(0)
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(50)))
        split = split_words(text)
        covered, previous_end = set(), 0
        for word, start, end in split:
            assert text[start:end] == word and word and start >= previous_end
            # An ideograph or kana is never glued to another character (only to its combining marks).
            assert not cjk.search(word[1:]), (text, word)
            assert not cjk.match(word) or len(regex.findall(r"\X", word)) == 1, (text, word)
            covered.update(range(start, end))
            previous_end = end
        left_out = "".join(c for i, c in enumerate(text) if i not in covered)
        assert all(c.isspace() or c == "\u200b" for c in left_out), (text, left_out)


def test_whitespace_languages_are_unchanged():
    text = "Paul's car isn't U.S. e-mail 1,000.50 see http://t.co/abc. Zürich naïve"
    assert words_of(text) == [
        "Paul",
        "'s",
        "car",
        "isn't",
        "U.S",
        ".",
        "e-mail",
        "1,000.50",
        "see",
        "http://t.co/abc",
        ".",
        "Zürich",
        "naïve",
    ]


def test_cluener_span_tags_exactly_its_characters():
    # CLUENER2020 train: {"text": "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。",
    #                     "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}}
    # (inclusive ends there; nertune's spans are end-exclusive)
    text = "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。"
    tagged = tag_words_from_spans(text, [(9, 12, "name"), (0, 4, "company")])
    words, tags = tagged.words, tagged.tags
    assert words == list(text)
    assert tags[9:12] == ["B-name", "I-name", "I-name"]
    assert tags[:4] == ["B-company", "I-company", "I-company", "I-company"]
    assert all(tag == "O" for tag in tags[4:9] + tags[12:])


def test_span_inside_a_latin_run_in_chinese_text_splits_the_run_or_is_refused_when_strict():
    text = "我在玩DOTA2和CSOL"
    tagged = tag_words_from_spans(text, [(3, 8, "game"), (9, 13, "game")])
    assert list(zip(tagged.words, tagged.tags))[3:] == [("DOTA2", "B-game"), ("和", "O"), ("CSOL", "B-game")]
    assert tagged.split_words == 0
    tagged = tag_words_from_spans(text, [(3, 7, "game")])
    assert tagged.words[3:5] == ["DOTA", "2"] and tagged.tags[3:5] == ["B-game", "O"] and tagged.split_words == 1
    assert tag_words_from_spans(text, [(3, 7, "game")], "expand").tags[3] == "B-game"
    with pytest.raises(ValueError, match="cuts the word 'DOTA2'.*data.span_alignment=split"):
        tag_words_from_spans(text, [(3, 7, "game")], "strict")
