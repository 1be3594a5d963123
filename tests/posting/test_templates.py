"""Templates: every kind renders, and every way a template cannot make text gives its sentence."""

from __future__ import annotations

import json
import random

import pytest

from steward.posting.templates import TemplateError, WordPicker, parse_template

WORDS = WordPicker(["owl", "fox", "berry", "unicorn", "love", "day"])


def renders(raw: str, n: int = 30, words: WordPicker = WORDS) -> list[str]:
    template = parse_template(raw)
    rng = random.Random(5)
    return [template.render(words, rng) for _ in range(n)]


def test_it_fills_the_seed_bots_printf_template_with_a_word():
    out = renders("%s – это когда тебя любят.", words=WordPicker(["кошка"]))
    assert set(out) == {"кошка – это когда тебя любят."}


def test_it_gives_each_printf_slot_a_different_word_and_keeps_a_literal_percent():
    for text in renders("%s and %s, 100%% sure"):
        first, rest = text.split(" and ")
        second = rest.removesuffix(", 100% sure")
        assert first in WORDS.words and second in WORDS.words
        assert first != second


def test_it_repeats_a_named_slot_capitalizes_it_and_keeps_literal_braces():
    for text in renders("{Word} is {word}, not {word2} {{really}}"):
        head, rest = text.split(" is ")
        same, other = rest.removesuffix(" {really}").split(", not ")
        assert head == same.capitalize()
        assert same != other and other in WORDS.words


def test_it_expands_a_tracery_grammar_with_modifiers_and_actions():
    grammar = {
        "origin": "[hero:#word#]#hero.a.capitalize# met #hero.s#, then #verb.ed#.",
        "verb": ["love", "cry", "jump"],
    }
    out = renders(json.dumps(grammar))
    expected = {
        f"{art.capitalize()} {w} met {plural}, then {verb}."
        for w, art, plural in [
            ("owl", "an", "owls"),
            ("fox", "a", "foxes"),
            ("berry", "a", "berries"),
            ("unicorn", "a", "unicorns"),
            ("love", "a", "loves"),
            ("day", "a", "days"),
        ]
        for verb in ("loved", "cried", "jumped")
    }
    assert set(out) <= expected
    assert len(set(out)) > 5


def test_it_reads_a_tracery_grammar_from_a_json_file(tmp_path):
    path = tmp_path / "grammar.json"
    path.write_text(json.dumps({"origin": ["#greeting.capitalize#, #word#!"], "greeting": "hi"}))
    template = parse_template(str(path))
    assert template.kind == "tracery"
    assert set(renders(str(path))) <= {f"Hi, {w}!" for w in WORDS.words}


def test_it_lets_a_grammars_own_word_rule_win_over_the_word_source():
    template = parse_template('{"origin": "#word#", "word": "mine"}')
    assert not template.needs_words
    assert template.render(WordPicker([]), random.Random()) == "mine"


def test_it_runs_rules_for_their_actions_and_honours_escapes():
    grammar = {
        "origin": "#[#set#]sentence#",
        "set": ["[color:red][mood:warm]", "[color:blue][mood:calm]"],
        "sentence": "\\##color#: #mood#",
    }
    assert set(renders(json.dumps(grammar))) == {"#red: warm", "#blue: calm"}


def test_it_forgets_a_tags_own_action_once_the_tag_ends():
    # `#[w:...]x#` sets w only inside x (tracery.js's scoping); using it later is an error.
    grammar = {"origin": "#[w:#word#]x# #w#", "x": "#w#"}
    template = parse_template(json.dumps(grammar))
    with pytest.raises(TemplateError, match=r"used #w# before an action set it"):
        template.render(WORDS, random.Random())


def test_it_stops_a_grammar_that_grows_without_bound():
    template = parse_template('{"origin": "#a#", "a": ["#a# #a# #a#", "x"]}')
    failures = []
    for seed in range(40):
        try:
            template.render(WORDS, random.Random(seed))
        except TemplateError as exc:
            failures.append(str(exc))
    assert failures and all("recurses too often" in f for f in failures)
    assert len(failures) < 40


BAD = [
    ("", "is empty; write text with %s or {word} where a word goes"),
    ("   \n ", "is empty; write text with %s or {word} where a word goes"),
    (
        "just words",
        "has no slot for a word; write %s or {word} where a word goes, or give a Tracery grammar",
    ),
    ("%d is %s", "has '%d', but only %s (a word) and %% (a percent sign) are understood"),
    ("%s at 100%", "ends with a lone %; write %% for a literal percent sign"),
    ("%s and {word}", "mixes %s and {word} slots; use one kind"),
    (
        "{two words} is here",
        "has {two words}, but a slot is a name of letters, digits and _ such as {word} or {noun} "
        "({Word} capitalizes); write {{ and }} for literal braces",
    ),
    ("{word} is }", "has an unmatched brace; write {{ or }} for a literal brace"),
    (
        '{"origin": ["a" "b"]}',
        "looks like a Tracery grammar but is not valid JSON: "
        "Expecting ',' delimiter at line 1 column 17",
    ),
    ("missing/grammar.json", "names the file missing/grammar.json, which does not exist"),
    ('{"start": "x"}', 'is a Tracery grammar that has no "origin" rule, where every post starts'),
    ('{"origin": "#animal#"}', "is a Tracery grammar that uses #animal#, which no rule defines"),
    (
        '{"origin": "#a#", "a": []}',
        'is a Tracery grammar that has an empty rule "a"; a rule needs at least one option',
    ),
    (
        '{"origin": "#a#", "a": ["#b# and", "#a#"], "b": "#a#"}',
        'is a Tracery grammar that has a rule "origin" that never ends: '
        "every option leads back into a loop",
    ),
    (
        '{"origin": "ok", "a": ["#a#"]}',
        'is a Tracery grammar that has a rule "a" that never ends: '
        "every option leads back into a loop",
    ),
    (
        '{"origin": "#x.shout#", "x": "hi"}',
        "is a Tracery grammar that uses the modifier .shout, which is not one of "
        ".a .s .ed .capitalize .capitalizeAll .inQuotes .comma",
    ),
    (
        '{"origin": "#x"}',
        """is a Tracery grammar that has an unclosed "#" in rule "origin": '#x'""",
    ),
    (
        '{"origin": 5}',
        'is a Tracery grammar that has a rule "origin" that is neither text nor a list of texts',
    ),
]


@pytest.mark.parametrize(("raw", "sentence"), BAD, ids=[b[0] or "empty" for b in BAD])
def test_it_explains_a_template_that_cannot_make_text(raw, sentence):
    with pytest.raises(TemplateError) as caught:
        parse_template(raw)
    assert str(caught.value) == sentence


def test_it_explains_a_grammar_file_that_is_not_json(tmp_path):
    path = tmp_path / "grammar.json"
    path.write_text("{origin: x}")
    with pytest.raises(TemplateError) as caught:
        parse_template(str(path))
    assert str(caught.value) == (
        f"names {path}, which is not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1 column 2"
    )


def test_slots_may_have_any_name_and_a_name_repeats_its_word():
    template = parse_template("{Noun} meets {adj} {noun}.")
    assert template.kind == "slots"
    for text in (
        template.render(WordPicker(["owl", "moss", "tide"]), random.Random(n)) for n in range(20)
    ):
        first, rest = text.split(" meets ")
        adj, noun = rest.rstrip(".").split(" ")
        assert first == noun.capitalize() and adj != noun


def test_each_tracery_word_slot_draws_a_fresh_word_while_any_are_left():
    grammar = json.dumps({"origin": "#word# #word# #word#"})
    for text in renders(grammar, words=WordPicker(["owl", "fox", "elk"])):
        assert sorted(text.split()) == ["elk", "fox", "owl"], text
