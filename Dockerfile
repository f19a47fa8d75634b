# One image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FLAKEWATCH_DATA_DIR=/app/var
WORKDIR /app
COPY pyproject.toml constraints.txt README.md manage.py ./
COPY flakewatch ./flakewatch
COPY ingest ./ingest
COPY templates ./templates
# The runtime dependencies only (no [dev]), at the versions CI tested.
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --home /app flakewatch \
    && mkdir -p /app/var /app/metrics && chown flakewatch /app/var /app/metrics
# /app/metrics: PROMETHEUS_MULTIPROC_DIR in compose; a new named volume takes
# this directory's owner, so the unprivileged user can write it.
USER flakewatch
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --no-input
EXPOSE 8000
CMD ["gunicorn", "flakewatch.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
