"""The WSGI entry point: ``gunicorn predict:app`` (``waitress-serve predict:app`` on Windows)."""

from churn.app import create_app_from_env

app = create_app_from_env()

if __name__ == "__main__":
    # Flask's development server, for a quick try without gunicorn; port 9696 as in the course.
    app.run(host="0.0.0.0", port=9696)
