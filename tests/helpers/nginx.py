"""Debian's real nginx, set up as Elastic Beanstalk sets it up on a Docker instance, in front of a given port.

The reproduction is of the Docker platform on 64bit Amazon Linux 2023 (nginx 1.26 there): its
/etc/nginx/nginx.conf, the upstream block it writes to conf.d/elasticbeanstalk-nginx-docker-upstream.conf
for the container's port, and the healthd log files it adds with enhanced health, as they are on an
instance (`cat /etc/nginx/nginx.conf /etc/nginx/conf.d/*.conf` there; the platform's documentation,
"Extending Elastic Beanstalk Linux platforms", says where .platform/nginx/conf.d/ goes). Changed only
where a test must: files and the port in a temporary directory, 127.0.0.1 instead of the container's
address, `user` (the workers must reach that directory) and the temporary paths Debian's build puts
under /var/lib/nginx.
"""

from __future__ import annotations

import getpass
import grp
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from churn.settings import PROJECT_DIR

PLATFORM_CONF = PROJECT_DIR / ".platform" / "nginx" / "conf.d"
START_SECONDS = 10

# Elastic Beanstalk's /etc/nginx/nginx.conf on Docker running on 64bit Amazon Linux 2023, with {placeholders}.
NGINX_CONF = """\
# Elastic Beanstalk Nginx Configuration File

{user}worker_processes  auto;
error_log  {logs}/error.log;
pid        {run}/nginx.pid;
worker_rlimit_nofile    200000;

events {{
    worker_connections  1024;
}}

http {{
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    access_log    {logs}/access.log;

{temp_paths}
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                          '$status $body_bytes_sent "$http_referer" '
                          '"$http_user_agent" "$http_x_forwarded_for"';

    include  conf.d/*.conf;

    map $http_upgrade $connection_upgrade {{
            default       "upgrade";
    }}

    server {{
        listen 127.0.0.1:{port} default_server;
        gzip on;
        gzip_comp_level 4;
        gzip_types text/plain text/css application/json application/x-javascript text/xml application/xml {xml_rss};

        access_log    {logs}/access.log main;

        location / {{
            proxy_pass            http://docker;
            proxy_http_version    1.1;

            proxy_set_header    Connection             $connection_upgrade;
            proxy_set_header    Upgrade                $http_upgrade;
            proxy_set_header    Host                   $host;
            proxy_set_header    X-Real-IP              $remote_addr;
            proxy_set_header    X-Forwarded-For        $proxy_add_x_forwarded_for;
        }}

        # Include the Elastic Beanstalk generated locations
        include conf.d/elasticbeanstalk/*.conf;
    }}
}}
"""

# conf.d/elasticbeanstalk-nginx-docker-upstream.conf: the container's address and the port it EXPOSEs.
UPSTREAM_CONF = """\
upstream docker {{
    server 127.0.0.1:{upstream_port};
    keepalive 256;
}}
"""

# conf.d/healthd_logformat.conf and conf.d/elasticbeanstalk/healthd.conf, with enhanced health reporting.
HEALTHD_LOGFORMAT_CONF = """\
log_format healthd '$msec"$uri"'
                   '$status"$request_time"$upstream_response_time"'
                   '$http_x_forwarded_for';
"""
HEALTHD_CONF = """\
if ($time_iso8601 ~ "^(\\d{{4}})-(\\d{{2}})-(\\d{{2}})T(\\d{{2}})") {{
    set $year $1;
    set $month $2;
    set $day $3;
    set $hour $4;
}}
access_log {logs}/healthd/application.log.$year-$month-$day-$hour healthd;
"""


def nginx_binary() -> Path | None:
    """Debian's nginx, which is in /usr/sbin, off a non-root user's PATH."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


@dataclass
class Nginx:
    """A running nginx and where it keeps its files."""

    process: subprocess.Popen[bytes]
    port: int
    prefix: Path

    def error_log(self) -> str:
        """nginx's error log so far."""
        path = self.prefix / "logs" / "error.log"
        return path.read_text() if path.exists() else ""


def write_config(prefix: Path, port: int, upstream_port: int) -> Path:
    """Elastic Beanstalk's nginx configuration plus the project's .platform files, under ``prefix``."""
    logs, run, temp = prefix / "logs", prefix / "run", prefix / "temp"
    for folder in (logs / "healthd", run, temp, prefix / "conf.d" / "elasticbeanstalk"):
        folder.mkdir(parents=True, exist_ok=True)
    # As root nginx's workers would run as nobody, who cannot enter pytest's private temporary directory.
    user = f"user  {getpass.getuser()} {grp.getgrgid(os.getgid()).gr_name};\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"    {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = prefix / "nginx.conf"
    # The last gzip types, apart for the line length.
    xml_rss = "application/xml+rss text/javascript"
    config.write_text(
        NGINX_CONF.format(user=user, logs=logs, run=run, temp_paths=temp_paths, port=port, xml_rss=xml_rss)
    )
    (prefix / "conf.d" / "elasticbeanstalk-nginx-docker-upstream.conf").write_text(
        UPSTREAM_CONF.format(upstream_port=upstream_port)
    )
    (prefix / "conf.d" / "healthd_logformat.conf").write_text(HEALTHD_LOGFORMAT_CONF)
    (prefix / "conf.d" / "elasticbeanstalk" / "healthd.conf").write_text(HEALTHD_CONF.format(logs=logs))
    # What Elastic Beanstalk does with the bundle's .platform/nginx/conf.d/: copies it over conf.d/.
    shutil.copytree(PLATFORM_CONF, prefix / "conf.d", dirs_exist_ok=True)
    return config


def start_nginx(prefix: Path, port: int, upstream_port: int) -> Nginx:
    """nginx in the foreground on 127.0.0.1:``port``, proxying to ``upstream_port``; answering when returned."""
    binary = nginx_binary()
    if binary is None:
        reason = "Debian's nginx is not installed (apt-get install nginx)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the nginx tests, but {reason}")
        pytest.skip(reason)
    config = write_config(prefix, port, upstream_port)
    command = [str(binary), "-p", str(prefix), "-c", str(config), "-g", "daemon off;"]
    check = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        pytest.fail(f"nginx refuses the configuration:\n{check.stderr}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = Nginx(process, port, prefix)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return nginx
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_nginx(nginx)
                pytest.fail(f"nginx did not listen on {port}:\n{nginx.error_log()}")
            time.sleep(0.05)


def stop_nginx(nginx: Nginx) -> None:
    """SIGQUIT: nginx's graceful shutdown."""
    if nginx.process.poll() is None:
        nginx.process.send_signal(signal.SIGQUIT)
        try:
            nginx.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.process.kill()
            nginx.process.wait()
