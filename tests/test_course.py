"""The course as the chat's knowledge: passages cut from the tabs' own files, and finding them."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

import demos.eli5.content as content
from demos.course import knowledge
from demos.course.guard import (
    Support,
    check_reply,
    left_out_note,
    makes_a_mistake,
    misnames_a_port,
    statements_asked,
    states_a_myth,
)
from demos.course.knowledge import passages
from demos.course.retrieval import CourseIndex, course_index
from demos.ports.codes import diagnostic_codes


def topics(hits) -> list[str]:
    return [hit.passage.concept or hit.passage.kind for hit in hits]


def ids(hits) -> list[str]:
    return [hit.passage.id for hit in hits]


def test_every_part_of_the_course_is_a_passage():
    kinds = {passage.kind for passage in passages()}
    assert kinds == {"plain", "analogy", "mix-up", "technical", "example", "glossary", "jargon", "port", "diagnostic"}
    assert len({passage.id for passage in passages()}) == len(passages())


def test_passages_quote_the_files_and_never_the_myth():
    docker = content.get_concept("docker")
    by_id = {passage.id: passage for passage in passages()}
    assert by_id["docker/plain"].text == docker.plain
    assert by_id["docker/mix-up"].text == docker.truth
    assert not any(docker.myth in passage.text for passage in passages())
    assert by_id["port/7860"].text == "7860 is Gradio's default port."
    assert "Default port — Gradio: 7860; Streamlit: 8501." in [p.text for p in passages() if p.concept == "gradio-streamlit"]


def test_every_diagnostic_code_the_analysis_reports_is_explained():
    source = "\n".join(path.read_text(encoding="utf-8") for path in Path("demos/ports").glob("*.py"))
    reported = set(re.findall(r'(?:report|PortSpecError)\(\s*"([a-z0-9-]+)"', source))  # one line or the next
    reported |= set(re.findall(r'^\s+"([a-z0-9]+(?:-[a-z0-9]+)+)", "(?:error|warning|info)"', source, re.MULTILINE))
    assert len(reported) > 15
    assert reported <= set(diagnostic_codes())
    assert {p.id for p in passages() if p.kind == "diagnostic"} == {f"diagnostic/{code}" for code in diagnostic_codes()}


@pytest.mark.parametrize(
    "question, concept",
    [
        ("Is a Docker container the same thing as a virtual machine?", "docker"),
        ("is a container just a lightweight VM?", "docker"),
        ("what's the diffrence between an imgae and a contaner", "image-vs-container"),
        ("what is the recipe card?", "image-vs-container"),
        ("why is a port like a phone extension", "ports"),
        ("what's the airport in the story?", "kubernetes"),
        ("how do I run my model on many computers with k8s", "kubernetes"),
        ("does compose start my whole team of programs?", "compose"),
        ("is renting cloud computers always cheaper?", "cloud"),
        ("should I pick streamlit or gradio for a chat demo?", "gradio-streamlit"),
        ("my app in the container listens on 127.0.0.1 and I cannot reach it", "ports"),
    ],
)
def test_paraphrases_typos_and_analogies_find_their_concept(question, concept):
    hits = course_index().search(question)
    assert hits, question
    assert concept in topics(hits)


@pytest.mark.parametrize(
    ("question", "concept"),
    [("What is a port?", "ports"), ("What is Docker?", "docker"), ("explain Docker Compose", "compose"), ("What is Gradio?", "gradio-streamlit")],
)
def test_a_question_that_only_names_an_explainer_gets_its_plain_words_first(question, concept):
    assert course_index().search(question)[0].passage.id == f"{concept}/plain"


def test_a_diagnostic_and_a_well_known_port_are_found():
    assert "diagnostic/host-port-conflict" in ids(course_index().search("two containers on host port 8080 at once?"))
    assert "port/11434" in ids(course_index().search("which port does Ollama listen on?"))


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Write me a poem about cats", "how do I bake bread?", "who won the world cup in 2018",
     "¿Qué es la fotosíntesis?", "?!?!...", ""],
)
def test_off_topic_questions_find_nothing(question):
    assert course_index().search(question) == []


def test_a_follow_up_keeps_the_conversation_topic():
    assert "compose" in topics(course_index().search("and what about Compose?", earlier="What is Docker?"))
    assert topics(course_index().search("why?", earlier="Does Compose spread my app over many computers?"))[0] == "compose"
    # "Different" is in every mix-up passage: it must not pull "it" (the image) towards Gradio's.
    follow_up = course_index().search("And how is a container different from it?", earlier="What is a Docker image?")
    assert topics(follow_up)[0] == "image-vs-container"
    # A new subject is not pulled back to the old one, and an off-topic turn stays off-topic.
    assert course_index().search("what is the capital of France?", earlier="What is Docker?") == []


def test_a_huge_message_is_ranked_in_bounded_time():
    words = " ".join(f"zq{n}xv" for n in range(4000))[:16_000]
    start = time.perf_counter()
    for message in (words, "docker " * 2_300, "?" * 16_000):
        course_index().search(message)
    assert time.perf_counter() - start < 2.0  # bounded, not a benchmark: linear work on 16,000 characters is milliseconds


def test_editing_a_concept_file_changes_what_the_chat_knows(tmp_path, monkeypatch):
    data = tmp_path / "eli5"
    shutil.copytree(content.DATA_DIR, data, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    ports_file = data / "concepts" / "07-ports.yaml"
    ports_file.write_text(
        ports_file.read_text(encoding="utf-8").replace("phone extensions in a big office", "pigeonholes in a sorting office"),
        encoding="utf-8",
    )
    monkeypatch.setattr(content, "DATA_DIR", data)
    for cached in (content._concepts_by_id, content._glossary, content.glossary_entries, content.jargon_terms, knowledge.passages):
        cached.cache_clear()
    try:
        index = CourseIndex(knowledge.passages())
        assert "ports" in topics(index.search("what are the pigeonholes?"))
    finally:
        monkeypatch.undo()
        for cached in (content._concepts_by_id, content._glossary, content.glossary_entries, content.jargon_terms, knowledge.passages):
            cached.cache_clear()


# The guard on a grounded reply: what the course does not back is left out.


@pytest.mark.parametrize("concept_id", content.concepts())
def test_each_myth_is_caught_by_its_claims_and_the_course_never_states_one(concept_id):
    concept = content.get_concept(concept_id)
    assert states_a_myth(concept.myth) == concept
    assert states_a_myth(concept.truth) is None
    assert not [p.id for p in passages() if p.concept == concept_id and states_a_myth(p.plain_text)]


@pytest.mark.parametrize("concept_id", content.concepts())
def test_the_course_never_makes_a_mistake_that_it_corrects(concept_id):
    concept = content.get_concept(concept_id)
    assert concept.corrections, "each concept sets more than its myth straight"
    for correction in concept.corrections:
        assert makes_a_mistake(correction.truth) is None and states_a_myth(correction.truth) is None
    assert not [p.id for p in passages() if p.concept == concept_id and makes_a_mistake(p.plain_text)]


# Wrong sentences of the kinds the default model wrote with the course's notes in front of it, and
# right ones on the same points, which must stay.
MISTAKES = [
    "A Docker container is a lightweight, portable operating system that runs on top of the Linux kernel.",
    "Yes, Gradio and Streamlit are the same thing.",
    "Yes, EXPOSE in a Dockerfile publishes the port.",
    "A node in Kubernetes is a container that runs on the cluster.",
    "Streamlit uses port 7860 by default.",
    "The depends_on option waits until the database is ready.",
    "A pod is a computer in the cluster.",
    "In -p 8080:80, the right number is on your computer.",
    "localhost means the internet.",
    "docker run -p 7860:7860 installs the app on your computer.",
    "The --rm flag removes the image after the container stops.",
    "Services in a compose file talk to each other over the public internet.",
]
RIGHT = [
    "Gradio and Streamlit are not the same thing.",
    "EXPOSE in a Dockerfile is only a note; it opens nothing by itself.",
    "A node is a computer that runs containers.",
    "Streamlit listens on 8501, while Gradio uses port 7860.",
    "depends_on does not wait until a service is ready.",
    "In -p 8080:80 the left number is on your computer and the right is inside the container.",
    "The --rm flag removes the container when it stops, not the image.",
    "Delete the endpoint to free the money it costs.",
]


@pytest.mark.parametrize("sentence", MISTAKES)
def test_a_mistake_is_caught_as_a_myth_or_by_a_correction(sentence):
    assert states_a_myth(sentence) or makes_a_mistake(sentence)


@pytest.mark.parametrize("sentence", RIGHT)
def test_the_right_way_round_is_no_mistake(sentence):
    assert states_a_myth(sentence) is None and makes_a_mistake(sentence) is None


def test_a_mistake_is_left_out_even_off_the_course_and_the_note_says_what_is_right():
    checked = check_reply("A node is a container. Kubernetes runs pods.", None, finished=True)
    assert checked.text == "Kubernetes runs pods."
    note = left_out_note(checked)
    assert note.startswith("✂️ *Left out of the model's reply: the mistake that the course sets straight below.*")
    assert note.endswith("📘 The course says: A node is one computer, real or virtual, that pods run on.")


@pytest.mark.parametrize(
    "sentence, truth",
    [
        ("Port 443 is usually for SSH.", "SSH's usual port is 22; 443 is the usual port for HTTPS web servers."),
        ("The default port for Gradio is 8501.", "Gradio's usual port is 7860; 8501 is Streamlit's default port."),
        ("Port 22 is normally used by HTTP.", "HTTP's usual port is 80 or 8080; 22 is the usual port for SSH remote logins."),
    ],
)
def test_a_program_given_another_s_usual_port_is_corrected_from_the_ports_table(sentence, truth):
    assert misnames_a_port(sentence).truth == truth
    assert check_reply(sentence, None, finished=True).text == ""


@pytest.mark.parametrize(
    "sentence",
    [
        "8080 is a common alternative HTTP port.",  # the table gives HTTP both 80 and 8080
        "Open the Gradio app on port 8080 of your computer.",  # where it is published, not its own port
        "Open http://localhost:7860 in your browser, the default.",
        "SSH does not usually listen on 443.",
        "Port 443 is for HTTPS, the secure version of HTTP.",
        "The default port of Django is 8000.",
    ],
)
def test_a_port_said_rightly_or_only_in_passing_is_kept(sentence):
    assert misnames_a_port(sentence) is None


def test_no_passage_of_the_course_misnames_a_port():
    sentences = [s for p in passages() for s in re.split(r"(?<=[.!?])\s+|\n+", p.plain_text)]
    assert [s for s in sentences if misnames_a_port(s)] == []


def test_a_yes_or_no_question_is_read_as_the_statements_it_asks_about():
    assert "Gradio and Streamlit are the same thing" in statements_asked("Are Gradio and Streamlit the same thing?")
    assert statements_asked("Does EXPOSE in a Dockerfile publish the port?") == ["EXPOSE in a Dockerfile publish the port"]
    assert statements_asked("If I change a file inside a container, does the image change too?") == ["the image change too"]
    assert statements_asked("What is a port?") == []


@pytest.mark.parametrize(
    "question, concept_id",
    [
        ("Are Gradio and Streamlit the same thing?", "gradio-streamlit"),
        ("Does EXPOSE in a Dockerfile publish the port?", "ports"),
        ("Is a Docker container the same thing as a virtual machine?", "docker"),
        ("Can two containers both publish host port 8080 at the same time?", "ports"),
        ("If I change a file inside a running container, does the image change too?", "image-vs-container"),
    ],
)
def test_yes_to_a_question_about_a_myth_states_the_myth(question, concept_id):
    checked = check_reply("Yes, they are! Containers share the host's kernel.", None, finished=True, question=question)
    assert [c.id for c in checked.corrected] == [concept_id]
    assert checked.text == "Containers share the host's kernel."


def test_yes_to_a_question_about_a_mistake_gets_the_course_s_truth_and_no_stays():
    checked = check_reply("Yes.", None, finished=True, question="Does depends_on wait until a service is ready?")
    assert checked.text == "" and "does not wait until a service is ready" in left_out_note(checked)
    for reply, question in [("No, they are not.", "Are Gradio and Streamlit the same thing?"),
                            ("Yes, it does.", "Does Docker run on a Mac?"),
                            ("Containers are light. Yes, really.", "Is a container a virtual machine?")]:
        assert check_reply(reply, None, finished=True, question=question).text == reply


def test_a_reply_that_opens_by_repeating_the_question_loses_that_line():
    question = "Why should I delete my cloud endpoint after a demo?"
    checked = check_reply(f"Question: {question}\nIt is billed every hour.", None, finished=True, question=question)
    assert checked.text == "It is billed every hour." and left_out_note(checked) == ""


def support_for(question: str) -> Support:
    return Support(" ".join([question, *(hit.passage.plain_text for hit in course_index().search(question))]))


def test_a_reply_that_states_a_myth_loses_that_sentence_and_names_the_mix_up():
    question = "Is a container a virtual machine?"
    reply = "A container is a kind of virtual machine. A container borrows the kernel from the computer it runs on."
    checked = check_reply(reply, support_for(question), finished=True)
    assert checked.text == "A container borrows the kernel from the computer it runs on."
    assert [c.id for c in checked.corrected] == ["docker"]


def test_denying_the_myth_is_kept():
    question = "Is a container a virtual machine?"
    reply = "No, a container is not a virtual machine. It borrows the kernel."
    assert check_reply(reply, support_for(question), finished=True).text == reply


def test_numbers_and_words_the_notes_do_not_hold_are_left_out():
    question = "What port does Gradio use by default?"
    checked = check_reply("Gradio uses port 7860 by default. Gradio uses port 5000. Bananas grow on tall green trees.", support_for(question), True)
    assert checked.text == "Gradio uses port 7860 by default. "
    assert checked.unsupported == 2


def test_an_unfinished_sentence_waits_until_it_ends():
    support = support_for("What port does Gradio use by default?")
    streaming = check_reply("Gradio uses port 7860 by default. Gradio uses po", support, finished=False)
    assert streaming.text == "Gradio uses port 7860 by default. " and streaming.unsupported == 0


def test_off_the_course_only_myths_are_left_out():
    checked = check_reply("Paris is the capital of France. Docker is a virtual machine.", None, finished=True)
    assert checked.text == "Paris is the capital of France. " and [c.id for c in checked.corrected] == ["docker"]


def test_a_broken_off_fragment_is_left_out_and_a_short_answer_kept():
    support = support_for("Are Gradio and Streamlit the same thing?")
    assert check_reply("No.\nWhile there\n", support, finished=True).text == "No.\n"


def test_the_note_says_what_was_left_out_and_when_it_was_everything():
    support = support_for("Is a container a virtual machine?")
    some = check_reply("A container borrows the kernel. A container is a kind of virtual machine.", support, True)
    assert left_out_note(some).startswith("✂️ *Left out of the model's reply: a sentence that repeated a common mix-up")
    everything = check_reply("A container is a kind of virtual machine. Bananas grow on tall green trees.", support, True)
    note = left_out_note(everything)
    assert note.startswith("✂️ *The model's whole reply is left out: a sentence that repeated a common mix-up")
    assert "“Docker: a common mix-up”" in note and "1 sentence that the course's notes do not back" in note
    assert left_out_note(check_reply("A container borrows the kernel.", support, True)) == ""
