FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
# The [preview] extra (PyAV) keeps the free preview working without keys; build with
# --build-arg EXTRAS= for a lean image without it.
ARG EXTRAS=preview
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kling \
    && mkdir -p /data \
    && chown kling /data

USER kling
ENV DATABASE_PATH=/data/kling-bot.sqlite3 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"

CMD ["kling-bot"]
