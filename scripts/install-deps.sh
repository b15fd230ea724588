#!/bin/sh
# Install gambar's build and test dependencies from Debian's archive.
# Idempotent and quiet: when every package is already installed it only
# asks dpkg and exits, so `make run` / `make test` can call it every time.
set -e
PKGS="make gcc pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
libpng-dev libopenblas-dev liblmdb-dev lmdb-utils libinih-dev libmicrohttpd-dev
libssl-dev zlib1g-dev scdoc dataset-fashion-mnist python3 clang libclang-rt-14-dev
xxd curl libjs-chart.js prometheus chromium python3-protobuf protobuf-compiler
python3-websockets jq bc procps time libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
