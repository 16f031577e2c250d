"""Assemble the Hugging Face Space folder and upload it.

    python -m spaces_config.push --repo USER/NAME [--sdk gradio|docker] [--dry-run] [--out DIR]

--dry-run only writes and lists the folder; nothing touches the network.
Uploading needs a token: HF_TOKEN, or a saved `hf auth login`.
"""

import argparse
import shutil
import sys
from pathlib import Path

import yaml
from huggingface_hub import HfApi, get_token

PROJECT_ROOT = Path(__file__).resolve().parent.parent
README_TEMPLATE = Path(__file__).with_name("space_readme.md")
DEFAULT_OUT = PROJECT_ROOT / "build" / "space"

# What the running app needs; tests, docs and the Spark image stay at home.
APP_FILES = ("app.py", "demos", "model_runtime", "serving", "requirements.txt")
DOCKER_FILES = ("Dockerfile", ".dockerignore")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.py[co]")
# Debian packages a gradio-SDK Space installs from packages.txt (a Docker Space
# gets them from the Dockerfile): gcc builds the CPU kernels at first start.
SPACE_PACKAGES = ("gcc",)

# Spaces turn example caching on by default: the model would answer every
# example before the app serves anyone.
SPACE_VARIABLES = {"GRADIO_CACHE_EXAMPLES": "false"}

NO_TOKEN_EXIT_CODE = 2


def space_files(sdk: str) -> tuple[str, ...]:
    return APP_FILES + DOCKER_FILES if sdk == "docker" else APP_FILES


def space_readme(sdk: str) -> str:
    """The Space README: the template's front matter adjusted for the SDK."""
    _, front_matter, body = README_TEMPLATE.read_text(encoding="utf-8").split("---\n", 2)
    settings = yaml.safe_load(front_matter)
    if sdk == "docker":
        # A Docker Space takes Python and the start command from the Dockerfile
        # and only needs to know the port the app listens on.
        settings["sdk"] = "docker"
        for gradio_only in ("sdk_version", "python_version", "app_file"):
            del settings[gradio_only]
        settings["app_port"] = 7860
    front_matter = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True)
    return f"---\n{front_matter}---\n{body}"


def check_replaceable(out_dir: Path, project: Path) -> None:
    """The folder is rebuilt from scratch: refuse to wipe the project or a git clone."""
    out_dir, project = out_dir.resolve(), project.resolve()
    inside_project = out_dir == project or project in out_dir.parents
    under_build = project / "build" in out_dir.parents
    if out_dir in project.parents or (inside_project and not under_build):
        raise SystemExit(
            f"error: --out {out_dir} would replace project files; choose a folder under build/ or elsewhere"
        )
    if (out_dir / ".git").exists():
        raise SystemExit(f"error: --out {out_dir} is a git repository; choose an empty folder")


def assemble(out_dir: Path, sdk: str, project: Path) -> list[str]:
    """Write the Space folder from the project's files; return its files, relative and sorted."""
    check_replaceable(out_dir, project)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in space_files(sdk):
        source = project / name
        if source.is_dir():
            shutil.copytree(source, out_dir / name, ignore=SKIPPED)
        else:
            shutil.copy2(source, out_dir / name)
    (out_dir / "README.md").write_text(space_readme(sdk), encoding="utf-8")
    if sdk == "gradio":
        (out_dir / "packages.txt").write_text("\n".join(SPACE_PACKAGES) + "\n", encoding="utf-8")
    return sorted(path.relative_to(out_dir).as_posix() for path in out_dir.rglob("*") if path.is_file())


def upload(folder: Path, repo_id: str, sdk: str, token: str) -> str:
    """Create the Space if needed, set its variables, and make its files match the folder."""
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, repo_type="space", space_sdk=sdk, exist_ok=True)
    for key, value in SPACE_VARIABLES.items():
        api.add_space_variable(repo_id, key, value)
    # delete_patterns removes what the folder no longer has, such as the
    # Dockerfile after a Space moves back to the gradio SDK.
    api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="space",
        delete_patterns="*",
        commit_message=f"Deploy Playground ({sdk} SDK)",
    )
    return str(repo_url)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m spaces_config.push", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="the Space, as USER/NAME")
    parser.add_argument("--sdk", choices=("gradio", "docker"), default="gradio")
    parser.add_argument("--dry-run", action="store_true", help="write and list the folder, upload nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Space folder, replaced on each run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = None
    if not args.dry_run:
        token = get_token()
        if token is None:
            print(
                "error: no Hugging Face token. Set HF_TOKEN or run `hf auth login`, "
                "or use --dry-run to only assemble the folder.",
                file=sys.stderr,
            )
            return NO_TOKEN_EXIT_CODE
    files = assemble(args.out, args.sdk, PROJECT_ROOT)
    print(f"Space folder {args.out} ({args.sdk} SDK):")
    for name in files:
        print(f"  {name}")
    if args.dry_run:
        return 0
    print(f"Uploaded: {upload(args.out, args.repo, args.sdk, token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
