# The churn service: gunicorn serving predict:app on port 9696.
#   docker build -t churn-serving .
#   docker build --build-arg MODEL=model_C=0.5.bin -t churn-serving .    another model the project root holds
#   docker run --rm -p 9696:9696 churn-serving

# Build stage: the locked packages, installed by pipenv into a virtualenv that the final stage copies
# without pipenv itself (about 40 MB smaller). Python 3.11 is the Pipfile's python_version.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIPENV_VERBOSITY=-1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The same pin as scripts/pipenv.sh.
RUN pip install --no-cache-dir pipenv==2026.10.3 \
    && python -m venv --without-pip /opt/venv

WORKDIR /build
COPY Pipfile Pipfile.lock ./
# --deploy fails the build when Pipfile.lock is out of date with the Pipfile or the Python is not the
# Pipfile's; [packages] only, no dev tools. The active virtualenv is the "system" it installs into.
RUN pipenv install --system --deploy

FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The service runs as this user, never as root.
RUN groupadd --system --gid 10001 churn \
    && useradd --system --uid 10001 --gid churn --no-create-home --shell /usr/sbin/nologin churn

# Dependencies before code: a code change reuses this layer.
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Owned by root and read-only to the service user.
COPY gunicorn.conf.py predict.py ./
COPY churn/ churn/
# The model to serve, with its metadata: any `model_C=*.bin` that train.py wrote at the project root
# (.dockerignore and .ebignore admit them all). Elastic Beanstalk builds without build arguments, so
# this default is the model it serves: change it here to deploy another one there.
ARG MODEL=model_C=1.0.bin
COPY ${MODEL} ${MODEL}.json ./
ENV CHURN_MODEL_PATH=/app/${MODEL}

# Numeric, so Docker and Kubernetes' runAsNonRoot can tell it is not root without reading /etc/passwd.
USER 10001:10001
# gunicorn.conf.py binds 0.0.0.0:$PORT (9696 unless PORT is set); Elastic Beanstalk proxies to this port.
EXPOSE 9696
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '9696') + '/health', timeout=4)"]
# Exec form: gunicorn is PID 1 and gets SIGTERM from `docker stop` itself, then exits 0.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "predict:app"]
