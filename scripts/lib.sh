#!/usr/bin/env bash
# Shared helpers for tinylet's scripts; sourced, not run.

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# The repository root (scripts/..).
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

# Maps `uname -m` to the configs/ directory name.
host_arch() {
    case "$(uname -m)" in
        x86_64 | amd64) echo x86_64 ;;
        aarch64 | arm64) echo arm64 ;;
        *) die "unsupported architecture $(uname -m) (want x86_64 or aarch64)" ;;
    esac
}

# Variable names assigned in an env file (NAME=value lines).
env_names() {
    grep -E '^[A-Z_][A-Z0-9_]*=' "$1" | cut -d= -f1
}

# Prints the value of NAME from an env file, evaluated as the shell would (quotes, ${...}).
env_value() {
    local file=$1 name=$2
    # shellcheck disable=SC1090
    (set -a && . "$file" && printenv "$name") || die "$file does not set $name"
}

# render TEMPLATE ENVFILE: prints TEMPLATE with every ##NAME## replaced by NAME's value in
# ENVFILE; fails naming any placeholder left unfilled.
render() {
    local template=$1 envfile=$2 text name value left
    [ -r "$template" ] || die "cannot read template $template"
    [ -r "$envfile" ] || die "cannot read env file $envfile"
    text=$(cat "$template") || die "cannot read $template"
    shopt -u patsub_replacement 2>/dev/null || true
    for name in $(env_names "$envfile"); do
        value=$(env_value "$envfile" "$name")
        text=${text//"##${name}##"/$value}
    done
    left=$(grep -oE '##[A-Z_][A-Z0-9_]*##' <<<"$text" | sort -u | tr '\n' ' ' || true)
    [ -z "$left" ] || die "$template: $envfile does not set ${left}"
    printf '%s\n' "$text"
}

# Installs a package set with apt-get when a command is missing and we are root.
need_cmds() {
    local missing=() pkg cmd
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} with apt-get" >&2
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
            apt-get update -qq >/dev/null || die "apt-get update failed"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
                die "apt-get install ${missing[*]} failed"
        fi
    else
        die "missing commands; install the Debian packages: ${missing[*]}"
    fi
}

# unit_flags UNIT: prints the flags of a systemd unit's ExecStart= (with its \ continuations),
# one per line.
unit_flags() {
    local line in_exec=0
    while IFS= read -r line; do
        if [ $in_exec -eq 0 ]; then
            case "$line" in ExecStart=*) in_exec=1 ;; *) continue ;; esac
        fi
        local word
        for word in ${line%\\}; do
            case "$word" in --*) echo "$word" ;; esac
        done
        case "$line" in *\\) ;; *) break ;; esac
    done <"$1"
}

# seed_render TEMPLATE: fills the seed guide's ${CLUSTER_*} variables and ##NODE_IP## with local
# demo values (the guide's environment.sh is not ours).
seed_render() {
    # shellcheck disable=SC2016 # the ${...} are literal text in the template
    sed -e 's/##NODE_IP##/127.0.0.1/g' -e 's/${CLUSTER_DNS_DOMAIN}/cluster.local/' \
        -e 's/${CLUSTER_DNS_SVC_IP}/10.254.0.2/' -e 's|${CLUSTER_CIDR}|172.30.0.0/16|' "$1"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# oci_image NAME LAYER_DIR CONFIG OUT_TAR: an OCI image layout tarball with one layer (file
# modes kept: a setuid bit stays). CONFIG is the image config's members besides Env (PATH),
# as JSON: '"Cmd":["sh"]', '"Entrypoint":["/agnhost"],"Cmd":["pause"],"User":"1234"'.
oci_image() {
    local name=$1 layer_dir=$2 cfg=$3 out=$4 work arch diff layer config manifest
    work=$(mktemp -d)
    mkdir -p "$work/blobs/sha256"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layer_dir" \
        -cf "$work/layer.tar" .
    diff=$(sha "$work/layer.tar")
    gzip -n -1 "$work/layer.tar"
    layer=$(sha "$work/layer.tar.gz")
    mv "$work/layer.tar.gz" "$work/blobs/sha256/$layer"
    arch=$(dpkg --print-architecture)
    printf '{"architecture":"%s","os":"linux","config":{%s,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$arch" "$cfg" "$diff" >"$work/config.json"
    config=$(sha "$work/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
        "$config" "$(stat -c %s "$work/config.json")" "$layer" \
        "$(stat -c %s "$work/blobs/sha256/$layer")" >"$work/manifest.json"
    manifest=$(sha "$work/manifest.json")
    mv "$work/config.json" "$work/blobs/sha256/$config"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
        "$manifest" "$(stat -c %s "$work/manifest.json")" "$name" "${name##*:}" >"$work/index.json"
    mv "$work/manifest.json" "$work/blobs/sha256/$manifest"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
    tar -C "$work" -cf "$out" oci-layout index.json blobs
    rm -rf "$work"
}

# busybox_root DIR: a root filesystem of Debian's static busybox: /bin/busybox and a symlink per
# applet, /etc/passwd and /etc/group with root and nobody, /tmp and /root.
busybox_root() {
    local root=$1 applet
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
    chmod 1777 "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# static_pause OUT: a pause binary, a static C program that sleeps until SIGTERM or SIGINT
# and reaps children.
static_pause() {
    local src
    src=$(mktemp --suffix=.c)
    cat >"$src" <<'C'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
C
    gcc -static -O2 -o "$1" "$src" || { rm -f "$src"; die "building the pause binary failed"; }
    rm -f "$src"
}

# KubeletConfiguration lines for a benchmark node on a build machine (tests/common's
# build_machine_disk): absolute disk thresholds and no image GC, since the default 10%/15%
# would set DiskPressure on a disk full of build output and refuse the benchmark's pods.
build_machine_disk() {
    printf '%s\n' 'evictionHard:' '  memory.available: 100Mi' '  nodefs.available: 1Gi' \
        '  nodefs.inodesFree: 5%' '  imagefs.available: 1Gi' '  imagefs.inodesFree: 5%' \
        'imageGCHighThresholdPercent: 100'
}
