"""Deploy Playground: chat with a local model, learn containers, untangle ports.

    python app.py                      # http://127.0.0.1:7860, embedded model
    python app.py --share --auth me:secret --model HuggingFaceTB/SmolLM2-360M-Instruct
    python app.py --api-key sk-local   # also /v1 (the OpenAI API) and /metrics, with that key

Every flag has an environment variable (see --help), so containers and Spaces
can configure the app without changing its command.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from urllib.parse import urlparse

import gradio as gr

from demos import chat
from demos.eli5.ui import build_tab as build_eli5_tab
from demos.model_slot import ModelSlot
from demos.ports.ui import build_tab as build_ports_tab
from model_runtime import QUANTIZATIONS
from serving import ApiError, api_error_response, health_routes, routes

TITLE = "Deploy Playground"
INTRO = (
    "# 🚢 Deploy Playground\n"
    "Chat with a small language model running right here, learn what containers, "
    "Compose and Kubernetes are in plain words, and see where your ports really go."
)


# Mermaid scales a diagram to the page's width: on a phone a wide left-to-right
# diagram would shrink to a third of its size, so there it keeps a readable width and scrolls.
CSS = """
#chat-stats { min-height: 1.6em; }  /* the stats line appears without pushing the chat down */
/* Stopping a reply can race Gradio's own end of the stream, which then marks the stats line "Error";
   the line itself says how a reply ended, and a refused message gets its own notice. */
#chat-stats .error, #chat-stats .clear-status { display: none; }
#chatbot code { white-space: pre-wrap; overflow-wrap: anywhere; }  /* long inline code stays in its bubble */
@media (max-width: 700px) {
  .mermaid { overflow-x: auto; }
  .mermaid svg { min-width: 760px; }
}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (GRADIO_SERVER_NAME; default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")),
                        help="port to listen on (GRADIO_SERVER_PORT; default 7860)")
    parser.add_argument("--share", action="store_true", default=env("PLAYGROUND_SHARE", "") == "1",
                        help="also make a public gradio.live link (PLAYGROUND_SHARE=1)")
    parser.add_argument("--auth", action="append", default=split_auth(env("PLAYGROUND_AUTH", "")),
                        metavar="USER:PASSWORD", help="require a login; repeat for more users (PLAYGROUND_AUTH, comma-separated)")
    parser.add_argument("--auth-file", help="a file of USER:PASSWORD lines (PLAYGROUND_AUTH_FILE)",
                        default=env("PLAYGROUND_AUTH_FILE"))
    parser.add_argument("--model", default=env("PLAYGROUND_MODEL", "default"),
                        help="'default' (embedded SmolLM2-135M-Instruct), a hub id, a model folder or a .gguf file (PLAYGROUND_MODEL)")
    parser.add_argument("--quantization", default=env("PLAYGROUND_QUANTIZATION", "auto"),
                        choices=list(QUANTIZATIONS), help="weight format (PLAYGROUND_QUANTIZATION): "
                        + "; ".join(f"{name}: {words}" for name, words in QUANTIZATIONS.items()))
    parser.add_argument("--no-grounding", dest="grounded", action="store_false", default=env("PLAYGROUND_GROUNDING", "1") != "0",
                        help="chat as a plain model, without the course's notes and sources (PLAYGROUND_GROUNDING=0)")
    parser.add_argument("--concurrency", type=int, default=int(env("PLAYGROUND_CONCURRENCY", "8")),
                        help="replies generated at the same time (PLAYGROUND_CONCURRENCY; default 8)")
    parser.add_argument("--queue-size", type=int, default=int(env("PLAYGROUND_QUEUE_SIZE", "32")),
                        help="requests that may wait before new ones are told the server is busy (PLAYGROUND_QUEUE_SIZE)")
    parser.add_argument("--backend-url", default=env("PLAYGROUND_BACKEND_URL") or None, metavar="URL",
                        help="use an OpenAI-compatible engine elsewhere (vLLM, llama-server, NIM, Ollama, another copy "
                        "of this app), e.g. http://spark:8000/v1, instead of loading --model (PLAYGROUND_BACKEND_URL)")
    parser.add_argument("--backend-model", default=env("PLAYGROUND_BACKEND_MODEL") or None,
                        help="which of its models to use (PLAYGROUND_BACKEND_MODEL; default: the first it lists)")
    parser.add_argument("--backend-key", default=env("PLAYGROUND_BACKEND_KEY") or None,
                        help="its API key, if it asks for one (PLAYGROUND_BACKEND_KEY)")
    parser.add_argument("--api-key", default=env("PLAYGROUND_API_KEY") or None,
                        help="require `Authorization: Bearer KEY` on /v1 and /metrics (PLAYGROUND_API_KEY); "
                        "without it they are open, and off with --share or --auth")
    args = parser.parse_args(argv)
    if args.auth_file:
        with open(args.auth_file, encoding="utf-8") as f:
            args.auth += split_auth(",".join(line.strip() for line in f if line.strip()))
    if args.concurrency < 1 or args.queue_size < 1:
        parser.error("--concurrency and --queue-size must be at least 1")
    return args


def split_auth(text: str) -> list[str]:
    return [pair.strip() for pair in text.split(",") if pair.strip()]


def credentials(pairs: list[str]) -> list[tuple[str, str]] | None:
    result = []
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not (sep and user and password):
            raise SystemExit(f"--auth takes USER:PASSWORD, got {pair.split(':')[0]!r}…")
        result.append((user, password))
    return result or None


def build_app(slot: ModelSlot, concurrency: int = 8, notices: list[str] | None = None, grounded: bool = True) -> gr.Blocks:
    """The whole page. `notices` are shown at the top on every page load (e.g. share-link problems)."""
    notices = notices if notices is not None else []
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        banner = gr.Markdown(elem_id="notices")
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                links = chat.build_tab(slot, concurrency, grounded)
            with gr.Tab("ELI5 Explainers", id="eli5"):
                eli5 = build_eli5_tab(slot)
            with gr.Tab("Ports & Containers", id="ports"):
                codes = build_ports_tab()
        # A source under a chat reply opens where it comes from: its explainer, or the Ports tab's codes.
        for number, button in enumerate(links.buttons):
            button.click(
                partial(open_source, number), links.targets, [tabs, eli5.concept, eli5.parts, codes], api_visibility="private"
            )
        # Read on every page load: a share-link problem is only known after launch.
        demo.load(lambda: "\n\n".join(f"⚠️ {n}" for n in notices), None, banner, api_visibility="undocumented")
    return demo


def open_source(number: int, targets: list) -> tuple:
    tab, concept = targets[number]
    if tab == "ports":
        return gr.Tabs(selected="ports"), gr.skip(), gr.skip(), gr.Accordion(open=True)
    return gr.Tabs(selected="eli5"), concept, gr.Tabs(selected="explainer"), gr.skip()


def on_zero_gpu() -> bool:
    """A ZeroGPU Space: the GPU exists only inside calls decorated with spaces.GPU."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def load_model(args: argparse.Namespace):
    # On ZeroGPU no thread of the engine's own may touch the GPU and nothing is
    # captured at load (there is no GPU yet): each reply decodes eagerly inside
    # the call that holds the GPU.
    zero_gpu = on_zero_gpu()

    def load(report):
        import model_runtime

        if args.backend_url:
            from model_runtime import ModelLoadError
            from model_runtime.remote import RemoteEngine

            if points_at_itself(args):  # each reply would ask this app again, without end
                raise ModelLoadError(f"--backend-url {args.backend_url} is this app itself; give another engine's address")
            report(f"Connecting to the engine at {args.backend_url}…")
            return RemoteEngine(args.backend_url, args.backend_model, args.backend_key)

        engine = model_runtime.load(
            args.model,
            quantization=args.quantization,
            max_batch=args.concurrency,
            cuda_graphs=not zero_gpu,
            background=not zero_gpu,
            max_waiting=args.queue_size,
            report=report,
        )
        # The chaos load run (scripts/chaos_test.py) breaks one step of a running app this way.
        if os.environ.get("PLAYGROUND_INJECT_FAULT_AFTER_STEPS"):
            engine.inject_fault(int(os.environ["PLAYGROUND_INJECT_FAULT_AFTER_STEPS"]))
        return engine

    return load


def why_api_is_off(args: argparse.Namespace, auth) -> str | None:
    """Why /v1 and /metrics are off, or None when they are served. Gradio's login does not cover
    them, so an app open to others serves them only behind an API key."""
    if args.api_key or not (args.share or auth):
        return None
    return ("The OpenAI API (/v1) and /metrics are off: with a public link or a login they need "
            "--api-key KEY (or PLAYGROUND_API_KEY).")


def launch(demo: gr.Blocks, slot: ModelSlot, *, api_key: str | None = None, machines: bool = True, mcp: bool = True,
           **options):
    """Serve the page and, on its port, the health checks, the OpenAI API and /metrics (machines) and the
    MCP tools (mcp)."""
    extra = {"routes": health_routes(slot) + (routes(slot, api_key) if machines else []),
             "exception_handlers": {ApiError: api_error_response}}
    return demo.launch(prevent_thread_lock=True, show_error=True, css=CSS, mcp_server=mcp, app_kwargs=extra, **options)


THIS_MACHINE = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}


def points_at_itself(args: argparse.Namespace) -> bool:
    target = urlparse(args.backend_url)
    port = target.port or {"http": 80, "https": 443}.get(target.scheme)
    same_host = target.hostname == args.host or (target.hostname in THIS_MACHINE and args.host in THIS_MACHINE)
    return same_host and port == args.port


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    auth = credentials(args.auth)
    notices: list[str] = []
    if args.share and not auth:
        notices.append("The public link has no login: anyone who has it can use this app. Add --auth USER:PASSWORD. "
                       "Its MCP tools are off.")
    why_no_api = why_api_is_off(args, auth)
    if why_no_api:
        notices.append(why_no_api)
    for notice in notices:
        print(f"WARNING: {notice}", file=sys.stderr)
    gpu_call = None
    if on_zero_gpu():
        import spaces  # installed on every ZeroGPU Space; import it before torch touches CUDA

        gpu_call = spaces.GPU
    slot = ModelSlot(gpu_call)
    slot.load_in_background(load_model(args))
    demo = build_app(slot, args.concurrency, notices, args.grounded)
    demo.queue(max_size=args.queue_size, default_concurrency_limit=args.concurrency)
    launch(
        demo,
        slot,
        api_key=args.api_key,
        machines=why_no_api is None,
        mcp=not (args.share and not auth),
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=auth,
    )
    if args.share and not demo.share_url:
        problem = "No public link could be made (no internet, or the share tunnel is blocked); the app is served locally only."
        print(f"WARNING: {problem}", file=sys.stderr)
        notices.append(problem)
    demo.block_thread()


if __name__ == "__main__":
    main()
