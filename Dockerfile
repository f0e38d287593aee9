# mxprobe: one image for the API, the workers and the migration step (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
RUN pip install . && rm -rf /build

RUN useradd --system --create-home --uid 10001 mxprobe
USER mxprobe
WORKDIR /home/mxprobe
ENV MXPROBE_DATA_DIR=/home/mxprobe/.mxprobe

EXPOSE 8080
# The compose file gives each service its command: `mxprobe migrate`, `mxprobe api ...`,
# `mxprobe worker`. Alone, the image runs the API (DATABASE_URL must point at PostgreSQL).
CMD ["mxprobe", "api", "--host", "0.0.0.0", "--port", "8080"]
