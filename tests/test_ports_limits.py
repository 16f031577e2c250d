"""Hostile input is refused quickly, with a clear message, and without using much memory."""

import time
import tracemalloc

import pytest

from demos.ports import InputRejected, PortsInputError, analyze
from demos.ports.analyze import MAX_MAPPINGS
from demos.ports.diagram import build_diagram
from demos.ports.explain import sentences_markdown, table_rows
from demos.ports.safe_yaml import MAX_DEPTH, MAX_INPUT_CHARS

SECONDS = 5.0
MEGABYTES = 64


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\nservices:\n  x:\n    ports: *a9\n"


def alias_chain(length: int) -> str:
    lines = ["b0: &b0 [1]"] + [f"b{i}: &b{i} [*b{i - 1}]" for i in range(1, length)]
    return "\n".join(lines) + "\nservices: {}\n"


HOSTILE = {
    "billion laughs": billion_laughs(),
    "deep block mappings": "".join("  " * depth + f"k{depth}:\n" for depth in range(2000)),
    "deep flow sequences": "[" * 100_000 + "]" * 100_000,
    "recursive alias": "services: &s\n  web:\n    ports: [*s]\n",
    "alias chain": alias_chain(500),
    "1 MB of YAML": "services:\n  web:\n    ports:\n" + '      - "8080:80"\n' * (1_000_000 // 18),
    "1 MB of docker run": "docker run -p 8080:80 nginx\n" * (1_000_000 // 28),
    "too many mappings": "docker run " + " ".join(f"-p {port}:80" for port in range(10_000, 10_000 + MAX_MAPPINGS + 1)) + " img",
    "too many ports on the host network": "docker run --network host " + " ".join(f"--expose {port}" for port in range(1, MAX_MAPPINGS + 2)) + " img",
    "-P over many -p": "docker run -P " + " ".join(f"--expose 1-65535 -p {port}:{port}" for port in range(2, 6000, 2)) + " img",
    "extends fan-out": "services:\n  base:\n    ports: [" + ", ".join(["1"] * 3000) + "]\n" + "".join(f"  s{i}: {{extends: base}}\n" for i in range(100)),
    "extends chain": "services:\n" + "".join(f"  s{i}: {{extends: s{i + 1}}}\n" for i in range(1000)) + "  s1000: {ports: ['80']}\n",
}


def rejection_message(text: str) -> str:
    with pytest.raises(InputRejected) as raised:
        analyze(text)
    return str(raised.value)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_rejected_in_bounded_time_and_memory(name):
    started = time.perf_counter()
    message = rejection_message(HOSTILE[name])
    elapsed = time.perf_counter() - started
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    assert message.endswith(".") and len(message) > 40
    tracemalloc.start()  # measured apart: tracing makes Python several times slower
    try:
        rejection_message(HOSTILE[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEGABYTES * 2**20, f"used {peak / 2**20:.0f} MB"


def test_limits_name_the_problem():
    with pytest.raises(InputRejected, match="billion laughs"):
        analyze(HOSTILE["billion laughs"])
    with pytest.raises(InputRejected, match=f"nested more than {MAX_DEPTH}"):
        analyze(HOSTILE["deep flow sequences"])
    with pytest.raises(InputRejected, match=f"limit is {MAX_INPUT_CHARS:,}"):
        analyze(HOSTILE["1 MB of YAML"])


def test_input_just_under_the_limits_is_analysed():
    lines = ["services:", "  web:", "    ports:"]
    lines += [f'      - "127.0.0.1:{port}:80"' for port in range(20_000, 20_000 + MAX_MAPPINGS)]
    text = "\n".join(lines) + "\n"
    assert len(text) < MAX_INPUT_CHARS
    started = time.perf_counter()
    analysis = analyze(text)
    assert len(analysis.mappings) == MAX_MAPPINGS
    assert time.perf_counter() - started < 3 * SECONDS
    nested = "services:\n  web:\n    x-deep: " + "[" * (MAX_DEPTH - 5) + "]" * (MAX_DEPTH - 5) + "\n"
    assert analyze(nested).mappings == []


NEAR_THE_LIMIT = {
    "one line of many commands": "docker run x;" * 19_000,  # names stay unique without a quadratic search
    "semicolons": ";" * 250_000,  # the command search must not backtrack across them
    "env prefixes": "; A=b" * 50_000,
    "many exposed ports beside many mappings": "docker run " + "".join(f"--expose {port} " for port in range(1, 15_001))
    + "".join(f"-p {port}:{port} " for port in range(20_001, 21_901)) + "img",
    "numbers too long to convert": "services:\n  a:\n    ports: [" + "1" * 5000 + ", 1:" + "2" * 5000 + ', "' + "3" * 5000 + '"]\n',
}


@pytest.mark.parametrize("name", NEAR_THE_LIMIT)
def test_large_awkward_input_ends_quickly(name):
    started = time.perf_counter()
    try:
        analysis = analyze(NEAR_THE_LIMIT[name])
    except PortsInputError as error:
        assert str(error)
    else:
        assert all(d.code != "shell-syntax" for d in analysis.diagnostics)
        build_diagram(analysis), sentences_markdown(analysis), table_rows(analysis)  # what the page shows is part of the wait
    assert time.perf_counter() - started < SECONDS


def test_numbers_too_long_to_be_ports_are_reported():
    assert [d.code for d in analyze(NEAR_THE_LIMIT["numbers too long to convert"]).diagnostics] == ["invalid-port"] * 3
