#!/usr/bin/env bash
# setup.sh: one entry point to install dependencies, build, run and test fanns on Debian 12.
#
#   ./deploy/setup.sh deps               install missing Debian packages, build libfaiss_c.a
#   ./deploy/setup.sh build [--sanitize] deps + CMake build into build/ (or build-asan/)
#   ./deploy/setup.sh run [args...]      build + exec build/fannsd --data-dir ./data [args...]
#   ./deploy/setup.sh test               deps + build/ and build-asan/ + ctest in both
#
# Environment: FANNS_DEPS=build installs only what building needs (no test tools);
# FANNS_FAISS_C_DIR overrides where libfaiss_c.a is built (default build-deps/faiss_c).
#
# Every step is idempotent and cheap when its result is already there: packages are checked
# with dpkg-query before apt-get is called, and the FAISS C API library is rebuilt only when
# it is missing, older than its sources, or was built for another libfaiss-dev version.
#
# Why the FAISS C API is built here: Debian's libfaiss-dev ships the C API headers
# (/usr/include/faiss/c_api/) and libfaiss.a, but not libfaiss_c.  We fetch Debian's own faiss
# source package (the same version as the installed libfaiss-dev) with `apt-get source`, using
# a private apt configuration under build-deps/apt/ so the system's apt sources and lists are
# never touched, and compile c_api/*.cpp, c_api/impl/*.cpp and c_api/utils/*.cpp into
# build-deps/faiss_c/libfaiss_c.a (the CMake cache variable FANNS_FAISS_C_DIR points there).
# Everything under build-deps/ is git-ignored.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEPS_DIR="$ROOT/build-deps"
FAISS_C_DIR="${FANNS_FAISS_C_DIR:-$DEPS_DIR/faiss_c}"
JOBS="$(nproc 2>/dev/null || echo 2)"
# Release flags as Debian builds libfaiss; NDEBUG also stops the C API from printing every
# caught exception to stderr (fanns reports FAISS errors itself).
FAISS_C_CXXFLAGS="-std=c++17 -O2 -DNDEBUG -fPIC -fopenmp"
# FAISS runs k-means and batch encoding on OpenMP threads, and libgomp's default busy-waiting
# makes them many times slower when cores are shared (tests in parallel, small machines).
# libgomp reads this when it loads, so it is set here for fannsd and the tests.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# Packages needed to build and run fanns, and to run its tests and benchmarks.
BUILD_PKGS=(build-essential cmake pkg-config libuv1-dev liblmdb-dev libjansson-dev
            libfaiss-dev libopenblas-dev check libroaring-dev node-llhttp python3
            python3-numpy dpkg-dev)
TEST_PKGS=(libhnswlib-dev python3-faiss python3-hnswlib curl wrk python3-matplotlib)

# Prints the packages of "$@" that are not installed, one per line.
missing_pkgs() {
    local p status
    for p in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
        [ "$status" = "installed" ] || echo "$p"
    done
}

install_pkgs() {
    local want=("${BUILD_PKGS[@]}")
    # FANNS_DEPS=build (for images that only build and run) skips the test tools.
    if [ "${FANNS_DEPS:-all}" != build ]; then
        want+=("${TEST_PKGS[@]}")
        # Node.js may come from elsewhere (nodesource, nvm): ask Debian only when it is absent.
        command -v node >/dev/null 2>&1 || want+=(nodejs)
        command -v npm >/dev/null 2>&1 || want+=(npm)
    fi
    local missing
    mapfile -t missing < <(missing_pkgs "${want[@]}")
    if [ "${#missing[@]}" -eq 0 ]; then
        log "packages: all present"
        return 0
    fi
    log "packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

# apt-get with a private configuration rooted at $DEPS_DIR/apt/<name>: its own sources.list,
# no sources.list.d parts, its own lists and cache.  $1 is the configuration name, the rest
# are apt-get arguments.
private_apt() {
    local name="$1"; shift
    local d="$DEPS_DIR/apt/$name"
    local sandbox=()
    [ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
    apt-get -q \
        -o Dir::Etc::SourceList="$d/sources.list" \
        -o Dir::Etc::SourceParts="$d/sources.list.d" \
        -o Dir::State::Lists="$d/lists" \
        -o Dir::Cache="$d/cache" \
        "${sandbox[@]}" "$@"
}

# Writes a private apt configuration named $1 whose only entry is the deb-src line $2.
make_private_apt() {
    local d="$DEPS_DIR/apt/$1"
    mkdir -p "$d/sources.list.d" "$d/lists/partial" "$d/cache/archives/partial"
    printf '%s\n' "$2" > "$d/sources.list"
}

# Fetches and unpacks Debian's faiss source package, version $1, into $DEPS_DIR/faiss-src.
# Tries the current bookworm mirror first, then snapshot.debian.org at the date recorded in
# the system's debian.sources (or a fixed date known to carry 1.7.3-2).
fetch_faiss_src() {
    local ver="$1"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local opts="signed-by=$keyring"
    local stamp snap
    rm -rf "$DEPS_DIR/faiss-src"
    mkdir -p "$DEPS_DIR/faiss-src"

    make_private_apt mirror "deb-src [$opts] http://deb.debian.org/debian bookworm main"
    if private_apt mirror update --error-on=any >/dev/null &&
       (cd "$DEPS_DIR/faiss-src" && private_apt mirror source "faiss=$ver" >/dev/null); then
        return 0
    fi
    log "faiss $ver is not on the current mirror; trying snapshot.debian.org"
    stamp="$(grep -ho 'snapshot.debian.org/archive/debian/[0-9TZ]*' \
             /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1 | sed 's|.*/||' || true)"
    snap="${stamp:-20250520T000000Z}"
    make_private_apt snapshot \
        "deb-src [$opts check-valid-until=no] http://snapshot.debian.org/archive/debian/$snap bookworm main"
    rm -rf "$DEPS_DIR/faiss-src"; mkdir -p "$DEPS_DIR/faiss-src"
    private_apt snapshot update --error-on=any >/dev/null ||
        die "apt-get update from snapshot.debian.org failed"
    (cd "$DEPS_DIR/faiss-src" && private_apt snapshot source "faiss=$ver" >/dev/null) ||
        die "could not fetch the faiss $ver source package"
}

# Builds $FAISS_C_DIR/libfaiss_c.a from Debian's faiss source unless it is up to date.
build_faiss_c() {
    local ver lib stampfile stamp src f o objs=()
    ver="$(dpkg-query -W -f='${source:Version}' libfaiss-dev 2>/dev/null)" ||
        die "libfaiss-dev is not installed"
    stamp="faiss $ver; g++ $FAISS_C_CXXFLAGS"
    lib="$FAISS_C_DIR/libfaiss_c.a"
    stampfile="$FAISS_C_DIR/faiss-version"

    src="$(find "$DEPS_DIR/faiss-src" -maxdepth 2 -type d -name c_api 2>/dev/null | head -n1 || true)"
    if [ -f "$lib" ] && [ -n "$src" ] && [ "$(cat "$stampfile" 2>/dev/null)" = "$stamp" ] &&
       [ -z "$(find "$src" -name '*.cpp' -newer "$lib" -print -quit)" ]; then
        log "faiss C API: $lib is up to date (faiss $ver)"
        return 0
    fi

    local t0=$SECONDS
    if [ -z "$src" ] || [ "$(cat "$DEPS_DIR/faiss-src/version" 2>/dev/null)" != "$ver" ]; then
        command -v dpkg-source >/dev/null 2>&1 || die "dpkg-source missing (install dpkg-dev)"
        log "faiss C API: fetching Debian source package faiss=$ver"
        fetch_faiss_src "$ver"
        echo "$ver" > "$DEPS_DIR/faiss-src/version"
        src="$(find "$DEPS_DIR/faiss-src" -maxdepth 2 -type d -name c_api | head -n1)"
        [ -n "$src" ] || die "faiss source package has no c_api/ directory"
    fi

    # The source package's C API headers must be the ones installed by libfaiss-dev, since
    # fanns compiles against the installed copies.
    for f in "$src"/*.h "$src"/impl/*.h "$src"/utils/*.h; do
        cmp -s "$f" "/usr/include/faiss/c_api/${f#"$src"/}" ||
            die "C API header ${f#"$src"/} differs from /usr/include/faiss/c_api"
    done

    log "faiss C API: compiling ($JOBS jobs)"
    local obj="$FAISS_C_DIR/obj"
    rm -rf "$obj"; mkdir -p "$obj"
    # The C API wraps libfaiss's C++ classes; it is compiled against the installed faiss
    # headers (<faiss/...>), with its own directory first for its local includes.  The
    # positional parameters in the quoted script belong to the inner sh.
    # shellcheck disable=SC2016
    (cd "$src" && ls -- *.cpp impl/*.cpp utils/*.cpp) |
        xargs -P "$JOBS" -I{} sh -c \
            'g++ $4 -I"$1" -c "$1/$2" -o "$3/$(echo "$2" | tr / _).o"' \
            _ "$src" {} "$obj" "$FAISS_C_CXXFLAGS" ||
        die "compiling the faiss C API failed"
    for o in "$obj"/*.o; do objs+=("$o"); done
    rm -f "$lib"
    ar rcs "$lib" "${objs[@]}"
    rm -rf "$obj"
    echo "$stamp" > "$stampfile"
    log "faiss C API: built $lib in $((SECONDS - t0)) s"
}

cmd_deps() {
    install_pkgs
    build_faiss_c
}

# Configures and builds into $1 with extra CMake arguments "${@:2}".
cmake_build() {
    local dir="$1"; shift
    log "building $dir"
    cmake -S "$ROOT" -B "$ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DFANNS_FAISS_C_DIR="$FAISS_C_DIR" "$@" >/dev/null || return 1
    cmake --build "$ROOT/$dir" -j"$JOBS" || return 1
}

cmd_build() {
    local sanitize=0
    for a in "$@"; do
        case "$a" in
            --sanitize) sanitize=1 ;;
            *) die "build: unknown option $a" ;;
        esac
    done
    cmd_deps
    if [ "$sanitize" -eq 1 ]; then
        cmake_build build-asan -DFANNS_SANITIZE=ON
    else
        cmake_build build
    fi
}

cmd_run() {
    cmd_build
    mkdir -p "$ROOT/data"
    exec "$ROOT/build/fannsd" --data-dir "$ROOT/data" "$@"
}

cmd_test() {
    local results=() rc=0 dir
    cmd_deps
    if [ -x "$ROOT/tests/integration/setup.sh" ]; then
        log "running tests/integration/setup.sh"
        "$ROOT/tests/integration/setup.sh" || { results+=("integration setup: FAILED"); rc=1; }
    elif [ -f "$ROOT/tests/integration/setup.sh" ]; then
        log "running tests/integration/setup.sh"
        bash "$ROOT/tests/integration/setup.sh" || { results+=("integration setup: FAILED"); rc=1; }
    fi
    for dir in build build-asan; do
        local extra=()
        [ "$dir" = build-asan ] && extra=(-DFANNS_SANITIZE=ON)
        if ! cmake_build "$dir" "${extra[@]}"; then
            results+=("$dir: BUILD FAILED")
            rc=1
            continue
        fi
        log "testing $dir"
        # CTEST_PARALLEL_LEVEL=N in the environment runs tests in parallel.
        local st=0 line
        # pipefail makes the pipeline fail when ctest does.
        ctest --test-dir "$ROOT/$dir" --output-on-failure 2>&1 | tee "$ROOT/$dir/ctest.log" ||
            st=$?
        line="$(grep -E 'tests passed|No tests were found' "$ROOT/$dir/ctest.log" | tail -n1)"
        if [ "$st" -eq 0 ]; then
            results+=("$dir: ${line:-ok}")
        else
            results+=("$dir: FAILED: ${line:-ctest failed}")
            while IFS= read -r line; do
                results+=("    $line")
            done < <(sed -n '/The following tests FAILED/,$p' "$ROOT/$dir/ctest.log" |
                     grep -E '^[[:space:]]+[0-9]+ - ' || true)
            rc=1
        fi
    done
    echo
    echo "==== fanns test summary ===="
    printf '  %s\n' "${results[@]}"
    [ "$rc" -eq 0 ] && echo "  result: PASS" || echo "  result: FAIL"
    return "$rc"
}

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        deps) cmd_deps "$@" ;;
        build) cmd_build "$@" ;;
        run) cmd_run "$@" ;;
        test) cmd_test "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
