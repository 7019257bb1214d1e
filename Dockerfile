# Perturbation Explorer: the Streamlit app, CUDA-capable, runs on CPU too.
# PyPI's torch==2.14.1 wheel for Linux is the CUDA build (it brings the nvidia-* runtime
# wheels), so a slim Python base plus requirements.txt is the CUDA PyTorch stack with the
# exact pins we test; a pytorch/pytorch base would carry a second, different torch.
# GPU hosts: docker run --gpus all -p 8501:8501 perturbation-explorer
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user; the app writes nothing outside its temp dir.
RUN useradd --create-home --uid 1000 explorer
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=explorer:explorer engine ./engine
COPY --chown=explorer:explorer app ./app
COPY --chown=explorer:explorer assets ./assets
COPY --chown=explorer:explorer .streamlit ./.streamlit

USER explorer
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1

CMD ["streamlit", "run", "app/main.py", "--server.port=8501", "--server.address=0.0.0.0"]
