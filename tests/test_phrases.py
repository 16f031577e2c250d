"""Finding the course's phrasings in free text, and whether each clause affirms, denies or only supposes them."""

from __future__ import annotations

import pytest

from demos.eli5.phrases import find

VM = ("virtual machine",)


@pytest.mark.parametrize(
    "text, affirmed, denied, hypothetical",
    [
        ("A container is a virtual machine.", True, False, False),
        ("A container is not a virtual machine.", False, True, False),
        ("It isn't true that a container is not a virtual machine.", True, False, False),
        ("If a container were a virtual machine, it would boot a kernel.", False, False, True),
        # A condition after the phrasing does not frame it: the myth is still stated.
        ("A container is a virtual machine before it counts as one.", True, False, False),
    ],
)
def test_each_clause_affirms_denies_or_supposes(text, affirmed, denied, hypothetical):
    (found,) = find(text, VM)[:1]
    assert (found.stated, found.denied, found.hypothetical) == (affirmed, denied, hypothetical)


def test_a_negation_stops_at_its_clause():
    first, second = find("It is not a virtual machine, it shares the kernel.", ("virtual machine", "shares the kernel"))
    assert first.denied and second.affirmed


def test_text_without_the_phrasing_finds_nothing():
    assert find("Containers share the host's kernel.", VM) == []


@pytest.mark.parametrize("text", ["A container is lighter than a virtual machine.", "Containers are different from virtual machines."])
def test_a_comparison_in_the_gap_is_not_a_statement(text):
    assert find(text, ("container* is ... virtual machine*", "container* are ... virtual machine*")) == []


def test_not_just_adds_to_an_idea_rather_than_denying_it():
    (found,) = find("Docker does not just box the app", ("box*",))
    assert found.affirmed


def test_and_before_a_new_subject_starts_a_clause():
    first, second = find("It is not for many computers and it does not restart a copy", ("many computers", "restart*"))
    assert first.denied and second.denied, "two denials, not one double negation"


def test_the_last_match_in_a_clause_reads_it():
    (found,) = find("The address does not find the right computer", ("address", "right computer"))
    assert found.denied


def test_a_number_with_dots_or_colons_stays_in_one_clause():
    (found,) = find("It does not listen on 127.0.0.1", ("listen on 127 0 0 1",))
    assert found.denied
    (found,) = find("Use -p 8080:80, not 80:8080", ("p 8080 80",))
    assert found.affirmed, "the comma before a space still ends the clause"
