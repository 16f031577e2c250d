"""Explain it back hears "not": an explanation that denies the course is never praised, one that denies the myth is."""

from __future__ import annotations

import pytest

from demos.eli5.checker import MISTAKE, MYTH, check_explanation, feedback_markdown
from demos.eli5.content import concepts, get_concept

# Per concept: an explanation that denies its key ideas, one that sets the myth
# straight, and one whose ideas are each said with two negations.
CASES = {
    "docker": (
        "Docker is not a box. It does not put your program and what it needs together, "
        "and it will not run the same way on your laptop or in the cloud.",
        "Docker is not a virtual machine, it packs your program with everything it needs into one box, "
        "and the box runs the same way on any computer.",
        "It is not true that Docker does not pack your app with everything it needs, "
        "and it is not true that the box won't run the same way on any computer.",
    ),
    "image-vs-container": (
        "An image is never like a recipe and it is not a plan. A container is not a running copy made from the image, "
        "and you can't start many containers from one image.",
        "Changing a running container does not change the image: the image is like a recipe and the container is the "
        "meal cooked from it, so many meals come from one recipe.",
        "It isn't true that an image is not a recipe, and it is not true that a container is not a running copy of it. "
        "You can't say you cannot start many containers from one image.",
    ),
    "compose": (
        "Compose does not write the programs down in one file, and it cannot start them all with one command. "
        "The programs do not talk to each other.",
        "Compose doesn't spread across many computers; it starts a team of several programs on one computer with one "
        "command, and links them so they talk.",
        "It is not true that Compose can't start everything with one command, "
        "and it is not true that the programs cannot talk to each other.",
    ),
    "kubernetes": (
        "Kubernetes does not look after many copies on many computers, and it never starts a new one when a copy breaks.",
        "Not every AI app needs Kubernetes: it looks after many copies of an app on many computers "
        "and starts a new one if a copy crashes.",
        "It is not true that Kubernetes does not look after many copies, "
        "and it is not true that it never starts a new one when a copy breaks.",
    ),
    "cloud": (
        "With the cloud you do not rent anyone's computers, you never pay only for what you use, "
        "and they do not look after the machines.",
        "The cloud is not always cheaper: you rent someone else's computers and pay only for the time you use, "
        "and they look after the machines.",
        "It is not true that you don't rent the computers, and it isn't true that you cannot pay only for what you use.",
    ),
    "gradio-streamlit": (
        "Gradio does not put a web page in front of the model, and it never passes your request to the model.",
        "Gradio and Streamlit are not the same thing with different names: both put a web page in front of the model "
        "and pass each request to it, but Gradio suits demos and Streamlit suits dashboards.",
        "It is not true that Gradio doesn't put a web page in front of the model, "
        "and it is not true that it never passes requests to the model.",
    ),
    "ports": (
        "A port isn't like a phone extension. The port number does not pick the right program, "
        "and you cannot forward a number on your computer into a container.",
        "You can't reach it straight away: you must publish the port, which forwards a number on your computer to "
        "the container, and the port picks the right program like a phone extension.",
        "It is not true that the port does not pick the right program, "
        "and you can't say that Docker cannot forward a port into the container.",
    ),
}


def test_every_concept_has_its_cases():
    assert set(CASES) == set(concepts())


@pytest.mark.parametrize("concept_id", concepts())
def test_a_plain_right_explanation_still_passes(concept_id):
    result = check_explanation(concept_id, get_concept(concept_id).sample_answer)
    assert result["verdict"] == "great" and result["contradicted"] == []


@pytest.mark.parametrize("concept_id", concepts())
def test_a_negated_explanation_needs_work_and_names_what_it_contradicts(concept_id):
    text = CASES[concept_id][0]
    result = check_explanation(concept_id, text)
    ideas = {idea.id: idea.says for idea in get_concept(concept_id).key_ideas}
    assert result["verdict"] == "needs-work"
    assert result["covered"] == [] and len(result["contradicted"]) >= 2
    for said in result["contradicted"]:
        assert said["clause"] in text and said["course"] == ideas[said["idea"]]
        assert said["idea"] not in result["missed"]


@pytest.mark.parametrize("concept_id", concepts())
def test_denying_the_myth_is_credited(concept_id):
    result = check_explanation(concept_id, CASES[concept_id][1])
    assert result["myth_denied"] and result["contradicted"] == []
    assert result["verdict"] in ("good", "great")


@pytest.mark.parametrize("concept_id", concepts())
def test_a_double_negation_affirms(concept_id):
    result = check_explanation(concept_id, CASES[concept_id][2])
    assert result["contradicted"] == [] and len(result["covered"]) >= 2
    assert result["verdict"] in ("good", "great")


@pytest.mark.parametrize("concept_id", concepts())
def test_stating_the_myth_spoils_an_otherwise_great_explanation(concept_id):
    concept = get_concept(concept_id)
    result = check_explanation(concept_id, f"{concept.sample_answer} {concept.myth}")
    assert result["verdict"] == "needs-work"
    assert [said["idea"] for said in result["contradicted"]] == [MYTH]
    assert concept.truth.startswith(result["contradicted"][0]["course"])


def test_a_mistake_the_course_corrects_spoils_an_explanation_and_the_feedback_sets_it_straight():
    concept = get_concept("kubernetes")
    result = check_explanation("kubernetes", f"{concept.sample_answer} Each node is a container.")
    assert result["verdict"] == "needs-work"
    assert [said["idea"] for said in result["contradicted"]] == [MISTAKE]
    feedback = feedback_markdown("kubernetes", result)
    assert "You wrote “Each node is a container”, which is a mistake. The course says: A node is one computer" in feedback


@pytest.mark.parametrize(
    "concept_id, text",
    [
        ("docker", "Docker is basically a little virtual computer running inside your computer, with its own Windows or Linux inside."),
        ("docker", "Docker works by creating a full separate operating system for each app, so each box boots its own OS."),
        ("image-vs-container", "If you install a package inside a running container, the image gets updated with it too."),
        ("image-vs-container", "A container saves all your changes back into the image automatically, so your data is never lost."),
        ("compose", "Compose is basically a small Kubernetes: it runs your services on several machines and keeps them alive."),
        ("kubernetes", "Any real AI app has to run on Kubernetes, otherwise it isn't deployed properly."),
        ("cloud", "The cloud always works out cheaper than owning your own server, because you never pay for hardware."),
        ("gradio-streamlit", "Gradio and Streamlit are pretty much identical, just made by different companies."),
        ("ports", "Putting EXPOSE 7860 in the Dockerfile is enough to open the port so your browser can reach the app."),
    ],
)
def test_the_myth_in_a_learner_s_own_words_spoils_even_a_great_explanation(concept_id, text):
    result = check_explanation(concept_id, f"{get_concept(concept_id).sample_answer} {text}")
    assert result["verdict"] == "needs-work" and result["contradicted"]


@pytest.mark.parametrize("text", ["Without Docker, your app won't run the same on other computers.",
                                  "If you didn't have Docker, your app wouldn't work the same on another computer."])
def test_the_problem_docker_solves_said_first_is_no_contradiction(text):
    assert check_explanation("docker", f"{text} Docker packs the app with everything it needs.")["contradicted"] == []
    assert check_explanation("docker", "Docker does not run the same everywhere.")["contradicted"]


def test_until_ends_the_clause_that_its_negation_is_in():
    text = "A port inside a container isn't reachable from your computer until you publish it with -p."
    assert check_explanation("ports", text)["contradicted"] == []


def test_an_idea_that_is_a_no_is_covered_by_its_negation_and_contradicted_without_one():
    covered = check_explanation("docker", "Nobody has to set it all up again, and you never reinstall anything.")
    assert covered["covered"] == ["no-setup"]
    contradicted = check_explanation("docker", "You still have to install everything again on each computer you use.")
    assert [said["idea"] for said in contradicted["contradicted"]] == ["no-setup"]
    otherwise = check_explanation("docker", "Without Docker you would have to install it all again on each computer.")
    assert otherwise["covered"] == ["no-setup"] and otherwise["contradicted"] == []
    assert [s["idea"] for s in check_explanation("cloud", "You pay a big cost up front for the cloud.")["contradicted"]] == ["pay-for-use"]


def test_the_feedback_quotes_the_learner_and_the_course():
    result = check_explanation("docker", CASES["docker"][0])
    feedback = feedback_markdown("docker", result)
    assert "You wrote “Docker is not a box”, which denies this idea." in feedback
    assert "The course says: It packs the app together with everything the app needs." in feedback
    myth = feedback_markdown("docker", check_explanation("docker", "Docker is a virtual machine with its own operating system."))
    assert "which is the common mix-up. The course says: A container borrows the core of the operating system" in myth


def test_the_feedback_praises_setting_the_myth_straight():
    assert "You set the common mix-up straight." in feedback_markdown("docker", check_explanation("docker", CASES["docker"][1]))


@pytest.mark.parametrize(
    ("concept_id", "text"),
    [
        ("cloud", "You never have to fix the machines yourself."),
        ("kubernetes", "You don't need to restart a crashed copy by hand."),
    ],
)
def test_a_chore_the_learner_is_spared_is_not_a_contradiction(concept_id, text):
    assert check_explanation(concept_id, text)["contradicted"] == []
