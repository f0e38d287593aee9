# mxprobe: one image for the API, the workers and the migration step (docker-compose.yml).
# Python packages come from the lock (requirements.txt: exact versions, hash-checked), so a rebuild
# to patch the OS gets the same packages that passed CI. Refresh it with `make lock` (README).
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv holding the locked packages, then mxprobe itself
FROM ${PYTHON_IMAGE} AS build
# (pip writes the .pyc files here: the runtime user could not.)
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mxprobe
ENV PATH=/opt/mxprobe/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
# --no-deps: everything is already there, at the locked versions; --no-build-isolation: built
# with the locked setuptools rather than whatever is newest today.
RUN pip install --no-deps --no-build-isolation . && pip check

# ---- runtime: the virtualenv alone, run by an unprivileged user
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/mxprobe/bin:$PATH
COPY --from=build /opt/mxprobe /opt/mxprobe

RUN useradd --system --create-home --uid 10001 mxprobe
USER mxprobe
WORKDIR /home/mxprobe
ENV MXPROBE_DATA_DIR=/home/mxprobe/.mxprobe

EXPOSE 8080
# The API's /healthz: 200 while the process is up and its database answers. The image has no
# curl; Python's urllib does (it raises on a non-2xx answer or no answer, so the check fails).
# Containers running `mxprobe worker` or `mxprobe migrate` set their own (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

# The compose file gives each service its command: `mxprobe migrate`, `mxprobe api ...`,
# `mxprobe worker`. Alone, the image runs the API (DATABASE_URL must point at PostgreSQL).
CMD ["mxprobe", "api", "--host", "0.0.0.0", "--port", "8080"]
