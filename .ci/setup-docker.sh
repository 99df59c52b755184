#!/bin/sh
# Make a Docker engine and the sandbox base image available (idempotent: skips what is there).
# Used by .ci/run; also what a developer on Debian/Ubuntu can run once (as root).
set -eu

READY_TIMEOUT="${DOCKERD_READY_TIMEOUT:-60}"
PYTHON_BIN="${PYTHON:-python}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"  # the local sandbox's isolation
if [ -n "$missing" ]; then
    echo "setup-docker: installing$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "setup-docker: starting dockerd (log: /var/log/dockerd.log)" >&2
    # No init system on CI machines: run the daemon in the background ourselves.
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    waited=0
    until docker info >/dev/null 2>&1; do
        if [ "$waited" -ge "$((READY_TIMEOUT * 2))" ]; then
            echo "setup-docker: dockerd not ready after ${READY_TIMEOUT}s; last log lines:" >&2
            tail -n 20 /var/log/dockerd.log >&2 || true
            echo "setup-docker: fix the engine (cgroups, storage driver, root) or run with --sandbox local" >&2
            exit 3
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
fi
echo "setup-docker: engine ready: $(docker version --format '{{.Server.Version}}' 2>/dev/null)" >&2

# Base image from Debian packages (no registry); a no-op when the tag exists.
"$PYTHON_BIN" -m sandbox.cli build-base --python "${AGENT_SANDBOX_PYTHON:-3.11}"
