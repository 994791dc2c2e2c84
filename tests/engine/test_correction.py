"""Hotword correction: a spotted term replaces the words the CTC heard it in place of, and only then."""

from __future__ import annotations

import numpy as np

from engine.correction import correct_hotwords
from engine.hotwords import spot
from engine.model.acllm import CharCTC
from engine.model.config import DEFAULT_CTC_ALPHABET
from tests.engine.test_hotwords import posteriors

CTC = CharCTC(DEFAULT_CTC_ALPHABET)


def heard(text: str, weight: float = 0.9) -> np.ndarray:
    """CTC log-probabilities whose best path spells ``text``: each character's frame, then a blank frame."""
    return posteriors([{ch: weight} for ch in text])


def test_a_misrecognised_name_becomes_the_listed_one_the_audio_holds():
    fixed = correct_hotwords("Call Carla, now.", heard("call siobhan now"), ["Novartis", "Siobhan", "Carl"], CTC)
    assert fixed == "Call Siobhan, now."  # the comma stays where the LLM put it


def test_a_name_the_llm_left_out_is_put_back_between_its_neighbours():
    assert correct_hotwords("Call now.", heard("call siobhan now"), ["Siobhan"], CTC) == "Call Siobhan now."


def test_a_multi_word_term_replaces_as_many_words_and_a_possessive_is_kept():
    audio = heard("ask olivia da mota's team")
    assert correct_hotwords("Ask Olivia the motor's team.", audio, ["Olivia da Mota"], CTC) == "Ask Olivia da Mota's team."


def test_terms_that_were_not_said_leave_a_right_text_alone():
    audio = heard("call siobhan now")
    distractors = ["Novartis", "Carla", "Siobhan Kelly", "Nowak", "Callum"]
    assert correct_hotwords("Call Siobhan now.", audio, distractors + ["Siobhan"], CTC) == "Call Siobhan now."
    # "Ann" is spotted perfectly inside "anna", but "Anna" fits the audio better: kept.
    assert correct_hotwords("Call Anna now.", heard("call anna now"), ["Ann"], CTC) == "Call Anna now."


def test_nothing_to_do_without_text_or_list_or_a_spotted_term():
    audio = heard("call siobhan now")
    assert correct_hotwords("", audio, ["Siobhan"], CTC) == ""  # no text: no name is written into silence
    assert correct_hotwords("Call Carla now.", audio, [], CTC) == "Call Carla now."
    assert correct_hotwords("Call Carla now.", audio, ["Siobhan"], CTC, min_score=0.5) == "Call Carla now."  # no score is above 0
    assert correct_hotwords("Call Carla now.", heard("call carla now"), ["Siobhan"], CTC) == "Call Carla now."


def test_accented_terms_are_spotted_without_their_accents_and_written_with_them():
    assert correct_hotwords("We flew to sow Paulo.", heard("we flew to sao paulo"), ["São Paulo"], CTC) == "We flew to São Paulo."


def heard_marta_with_h(p_h: float) -> tuple[np.ndarray, float]:
    """Posteriors of "call marta now" whose blank frame after the "t" holds an "h" with probability ``p_h``,
    and how much more likely that makes "call martha now" than "call marta now" under the CTC (nats)."""
    from engine.correction import _ctc_log_likelihoods

    audio = heard("call marta now")
    row = np.full(CTC.vocab_size, 1e-4)
    row[0], row[CTC.index["h"]] = 1.0 - p_h, p_h
    audio[2 * len("call mart") - 1] = np.log(row / row.sum())
    before, after = _ctc_log_likelihoods(audio, [CTC.encode("call marta now"), CTC.encode("call martha now")])
    return audio, float(after - before)


def test_an_edit_needs_the_same_evidence_however_long_the_list():
    audio, gain = heard_marta_with_h(0.9)
    assert 1.0 < gain < 3.0  # "Martha" fits better than "Marta", by about 2 nats
    letters = "bcdfghjklmnpqrstvwxz"
    distractors = [f"{a}{b}{c}ov".title() for a in letters for b in "aeiou" for c in letters][:999]
    for hotwords in (["Martha"], distractors + ["Martha"]):
        assert correct_hotwords("Call Marta now.", audio, hotwords, CTC) == "Call Martha now."
    assert correct_hotwords("Call Marta now.", audio, ["Martha"], CTC, min_gain=3.0) == "Call Marta now."


def test_a_spotted_listed_term_wins_a_near_tie_but_not_a_clear_loss():
    faint, gain = heard_marta_with_h(0.4)
    assert -1.0 < gain < 0.0  # the CTC slightly prefers what was written; the user listed "Martha"
    assert correct_hotwords("Call Marta now.", faint, ["Martha"], CTC) == "Call Martha now."
    assert correct_hotwords("Call Marta now.", faint, ["Martha"], CTC, min_gain=0.0) == "Call Marta now."
    absent, gain = heard_marta_with_h(0.03)
    assert gain < -2.0
    assert spot(("Martha",), absent, CTC.encode)[0] >= -3.0  # still spotted: the gain is what turns it away
    assert correct_hotwords("Call Marta now.", absent, ["Martha"], CTC) == "Call Marta now."


def test_a_listed_term_written_twice_in_a_row_keeps_one_copy_if_the_audio_holds_one():
    audio = heard("recorded in hengelo")
    fixed = correct_hotwords("Recorded in Hengelo, Hengelo, Hengelo.", audio, ["Hengelo"], CTC)
    assert fixed == "Recorded in Hengelo."
    # a distractor the boost wrote twice, even one that was not spotted at all
    assert correct_hotwords("Thanks, Iawa Iawa.", heard("thanks gilles"), ["Iawa", "Nowak"], CTC, min_score=0.5) == "Thanks, Iawa."
    # said twice: both stay
    assert correct_hotwords("Hengelo, Hengelo.", heard("hengelo hengelo"), ["Hengelo"], CTC) == "Hengelo, Hengelo."


def test_a_listed_term_the_llm_wrote_gives_way_to_a_listed_term_the_audio_fits_better():
    # "Alison" is listed and spotted where it was written, but the audio holds all of "Alison Fyfe"
    fixed = correct_hotwords("When did you meet Alison?", heard("when did you meet alison fyfe"), ["Alison", "Alison Fyfe"], CTC)
    assert fixed == "When did you meet Alison Fyfe?"
    # and the other way round: a right term is not traded for a longer listed one the audio lacks
    kept = correct_hotwords("When did you meet Alison?", heard("when did you meet alison"), ["Alison", "Alison Fyfe"], CTC)
    assert kept == "When did you meet Alison?"


def test_a_spotted_term_written_with_a_letter_doubled_or_not_is_spelled_as_listed():
    # Posteriors with one "l": the CTC alone prefers the text as written, so only the list can decide.
    audio = heard("the project in valadolid")
    assert correct_hotwords("The project in Valadolid.", audio, ["Valladolid", "Nairobi"], CTC) == "The project in Valladolid."
    # only a term the audio holds here, and only whole words
    assert correct_hotwords("The project in Valadolid.", audio, ["Valladolid"], CTC, min_score=0.5) == "The project in Valadolid."
    assert correct_hotwords("Ask Annabel.", heard("ask annabel"), ["Ana"], CTC) == "Ask Annabel."
    # twice in one chunk: both respelled
    twice = correct_hotwords("Valadolid or Valadolid?", heard("valadolid or valadolid"), ["Valladolid"], CTC)
    assert twice == "Valladolid or Valladolid?"


def test_a_written_term_of_several_words_is_replaced_whole_or_not_at_all():
    # The LLM wrote the listed "Katharina Dallinger"; the audio fits "Oliver" better than "Dallinger" alone,
    # but trading only that word would leave a name that is listed nowhere.
    audio = heard("meet katharina oliver now")
    hotwords = ["Katharina Dallinger", "Oliver"]
    assert correct_hotwords("Meet Katharina Dallinger now.", audio, hotwords, CTC) == "Meet Katharina Dallinger now."
    # a single-word term written in its place may still give way
    assert correct_hotwords("Meet Katharina Dolly now.", audio, hotwords + ["Dolly"], CTC) == "Meet Katharina Oliver now."
