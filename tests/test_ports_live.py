"""Reading live containers through a real Docker-compatible API: Podman's service on a temporary socket."""

import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest

from demos.ports.live import EngineUnavailable, read_containers
from demos.ports.ui import show_live
from scripts.load_test import stop_app

IMAGE = "localhost/ports-test:latest"
READY_WITHIN = 60.0


def tiny_rootfs_tar(path: Path) -> Path:
    """A one-file root filesystem: enough for an image, since created containers never run."""
    archive = path / "rootfs.tar"
    content = b"a placeholder: the test only creates containers\n"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("README")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return archive


def wait_for_engine(url: str, service: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"podman system service exited: {service.stderr.read().decode(errors='replace')}")
        try:
            if docker.DockerClient(base_url=url, timeout=2).ping():
                return
        except docker.errors.DockerException:
            pass  # the socket is not there yet; ask again
        time.sleep(0.1)
    raise TimeoutError(f"podman system service did not answer on {url} within {READY_WITHIN:.0f} s")


@pytest.fixture(scope="module")
def podman_url(tmp_path_factory):
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    base = tmp_path_factory.mktemp("podman")
    # Private storage keeps the test away from the machine's own images and containers.
    podman = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"), "--storage-driver", "vfs"]
    run = lambda *args: subprocess.run([*podman, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
    run("import", str(tiny_rootfs_tar(base)), IMAGE)
    run("create", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", IMAGE, "/serve")
    run("create", "--name", "api", "-p", "8080:8000", "--expose", "3000", IMAGE, "/serve")
    url = f"unix://{base / 'api.sock'}"
    service = subprocess.Popen([*podman, "system", "service", "--time=0", url], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_engine(url, service)
        yield url
    finally:
        stop_app(service)
        service.stderr.close()


def test_created_containers_report_their_bindings(podman_url, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", podman_url)
    analysis = read_containers()
    found = {(m.source, m.host_ip, m.host_port, m.container_port, m.protocol) for m in analysis.mappings}
    assert found == {("web", None, 8080, 80, "tcp"), ("web", "127.0.0.1", 5353, 53, "udp"), ("api", None, 8080, 8000, "tcp")}
    assert [(port.source, port.port) for port in analysis.exposed] == [("api", 3000)]
    conflict = next(d for d in analysis.diagnostics if d.code == "host-port-conflict")
    assert "8080" in conflict.message
    assert all("(created)" in m.place for m in analysis.mappings)


def test_the_tab_shows_live_containers(podman_url, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", podman_url)
    diagram, sentences, problems, rows, mermaid_path = show_live()
    assert "subgraph" in diagram and "web" in diagram
    assert "extension 8080 on your computer" in sentences
    assert "host-port-conflict" in problems
    assert len(rows) == 3
    assert Path(mermaid_path).read_text().startswith("flowchart LR")


def test_no_engine_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nothing.sock'}")
    with pytest.raises(EngineUnavailable, match="No Docker engine answered"):
        read_containers()
