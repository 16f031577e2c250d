"""Docker's port syntax: the cases of go-connections' nat tests and docker-py's split_port tests."""

import pytest

from demos.ports.portspec import PortRange, PortSpec, PortSpecError, parse_port, parse_port_spec


def spec(container, host=None, host_ip=None, protocol="tcp"):
    as_range = lambda value: PortRange(*value) if isinstance(value, tuple) else PortRange(value, value)  # noqa: E731
    return PortSpec(as_range(container), None if host is None else as_range(host), host_ip, protocol)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("127.0.0.1:1000:2000", spec(2000, 1000, "127.0.0.1")),
        ("127.0.0.1::2000", spec(2000, None, "127.0.0.1")),
        ("127.0.0.1::2000-2001", spec((2000, 2001), None, "127.0.0.1")),
        ("1000:2000", spec(2000, 1000)),
        ("1000-1001:2000-2001", spec((2000, 2001), (1000, 1001))),
        ("1000-1001:2000", spec(2000, (1000, 1001))),  # the engine picks one host port of the range
        ("2000", spec(2000)),
        ("2000-2001", spec((2000, 2001))),
        ("127.0.0.1:1000-1001:2000-2001/udp", spec((2000, 2001), (1000, 1001), "127.0.0.1", "udp")),
        ("2001:abcd:ef00::2:1000:2000", spec(2000, 1000, "2001:abcd:ef00::2")),
        ("0.0.0.0:1234-1235:3333-3334/tcp", spec((3333, 3334), (1234, 1235), "0.0.0.0")),
        ("[2001:4860:0:2001::68]::333", spec(333, None, "2001:4860:0:2001::68")),
        ("[::1]:80:80", spec(80, 80, "::1")),
        ("2001:4860:0:2001::68::333", spec(333, None, "2001:4860:0:2001::68")),
        ("::1:80:80", spec(80, 80, "::1")),
        ("::::80", spec(80, None, "::")),
        ("::::6000/udp", spec(6000, None, "::", "udp")),
        ("192.168.1.100::80", spec(80, None, "192.168.1.100")),
        ("192.168.1.100:8080:80", spec(80, 8080, "192.168.1.100")),
        ("192.168.1.100::6000/udp", spec(6000, None, "192.168.1.100", "udp")),
        ("192.168.1.100::6000/sctp", spec(6000, None, "192.168.1.100", "sctp")),
        (":8080:6000/tcp", spec(6000, 8080)),
        ("1234/", spec(1234)),
        ("80-8080/udp", spec((80, 8080), protocol="udp")),
        ("1234/UDP", spec(1234, protocol="udp")),
        ("3456:3456/SCTP", spec(3456, 3456, protocol="sctp")),
        ("0:80", spec(80)),  # host port 0 asks for a free one
        ("0123:80", spec(80, 123)),  # Docker reads leading zeros as decimal
        (":80", spec(80)),  # docker-py refuses this; Docker's own parser takes it as a random host port
    ],
)
def test_valid_specs(text, expected):
    assert parse_port_spec(text) == expected


@pytest.mark.parametrize("protocol", ["tcp", "udp", "sctp"])
def test_every_protocol(protocol):
    assert parse_port_spec(f"127.0.0.1:1000:2000/{protocol}") == spec(2000, 1000, "127.0.0.1", protocol)


@pytest.mark.parametrize(
    "text, code",
    [
        ("0.0.0.0:1000:2000:tcp", "invalid-port"),
        ("0.0.0.0:1000:2000/ftp", "invalid-protocol"),
        ("0.0.0.0:1000-1010:2000-2002/tcp", "range-mismatch"),
        ("0.0.0.0:1000:2000-2002/tcp", "range-mismatch"),
        ("localhost:", "invalid-port"),
        ("localhost:80:", "invalid-port"),
        ("", "invalid-port"),
        ("/udp", "invalid-port"),
        ("localhost:1234:1234/tcp", "invalid-ip"),
        ("localhost:1234-1236:1234-1236/tcp", "invalid-ip"),
        ("192.168.1.100", "invalid-port"),
        ("192.168.1.100:-1:-1", "invalid-port"),
        ("asdf", "invalid-port"),
        ("1asdf", "invalid-port"),
        ("65536", "invalid-port"),
        ("8080:65536", "invalid-port"),
        ("1234-1230", "invalid-port"),
        ("0", "invalid-port"),
        ("[::1:80:80", "invalid-ip"),
        ("fe80::1%eth0:80:80", "invalid-ip"),
        ("80/any proto value", "invalid-protocol"),
        ("8080:٨٠", "invalid-port"),  # Arabic-Indic digits are digits to Python, not to Docker
    ],
)
def test_invalid_specs(text, code):
    with pytest.raises(PortSpecError) as raised:
        parse_port_spec(text)
    assert raised.value.code == code
    assert raised.value.message


@pytest.mark.parametrize("text, number", [("0123", 123), ("65535", 65535), ("1", 1)])
def test_port_numbers(text, number):
    assert parse_port(text) == number


@pytest.mark.parametrize("text", ["", "-1", "65536", "+80", " 80", "8_0", "0"])
def test_bad_port_numbers(text):
    with pytest.raises(PortSpecError):
        parse_port(text)
