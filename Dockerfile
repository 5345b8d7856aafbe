# dirhook's API and worker image (docker-compose.yml runs both from it).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dirhook ./dirhook
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
RUN pip install .
RUN useradd --system --uid 10001 dirhook && mkdir -p /data && chown dirhook /data
USER dirhook
ENV DIRHOOK_DATA_DIR=/data
EXPOSE 8000
CMD ["dirhook", "api", "--host", "0.0.0.0", "--port", "8000"]
